"""What reviewers decided about one Label Studio task, read from its annotations.

A task's annotations are reduced to one decision (accepted, edited, rejected, a preference, or
excluded) by a rule that the manifest reports: the ground-truth annotation first, else the
majority answer, else the latest annotation. Pure functions over the task JSON that Label
Studio's task listing returns, so the rule is tested without a server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tracetune.sync.conversation import Message
from tracetune.sync.review_kinds import PREDICTION_DETAILS_KEY, Control, ReviewKind, Verdict
from tracetune.sync.task_data import task_messages, task_tools


class Decision(StrEnum):
    ACCEPTED = "accepted"
    EDITED = "edited"
    REJECTED = "rejected"
    PREFERENCE = "preference"
    CANCELLED = "cancelled"
    UNREVIEWED = "unreviewed"
    INCOMPLETE = "incomplete"


class Rule(StrEnum):
    """How one annotation was chosen among several on a task."""

    SINGLE = "single"
    GROUND_TRUTH = "ground_truth"
    MAJORITY = "majority"
    LATEST = "latest"
    NONE = "none"


RULE_DESCRIPTION = (
    "one annotation per task: the ground-truth annotation if any, else the annotation giving "
    "the majority verdict (or preferred side), else the latest annotation; cancelled "
    "(skipped) annotations never count"
)

#: Reviewer flags that mark a task as carrying personal data or secrets.
PII_FLAGS = frozenset({"pii", "secret"})


@dataclass(frozen=True)
class PiiSpan:
    """A span a reviewer labelled as personal data: its text and its entity type."""

    label: str
    text: str


@dataclass
class ReviewedTask:
    """One task after its annotations were reduced to a decision.

    `answer` is the original final assistant message; `corrected` the reviewer's text when the
    verdict is edit (or a reject that still supplies a better answer). For preference tasks
    `chosen` / `rejected` are the two answers in the reviewer's order.
    """

    task_id: int
    kind: ReviewKind
    decision: Decision
    rule: Rule
    annotation_id: int | None
    run_ids: tuple[str, ...]
    prompt: list[Message]
    answer: Message | None = None
    corrected: str | None = None
    chosen: Message | None = None
    rejected: Message | None = None
    reason: str | None = None
    flags: frozenset[str] = frozenset()
    flags_from_reviewer: bool = False
    pii_spans: tuple[PiiSpan, ...] = ()
    predicted_pii_spans: tuple[PiiSpan, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    feedback: Sequence[Mapping[str, Any]] = ()
    annotators: int = 0
    tools: tuple[Mapping[str, Any], ...] = ()
    parallel_tool_calls: bool | None = None

    @property
    def cluster_id(self) -> str | None:
        value = self.details.get("cluster_id")
        return str(value) if value not in (None, "") else None

    @property
    def pii_flagged(self) -> bool:
        """Reviewer's flags decide when the annotation has them; else the backend's PII types."""
        if self.flags_from_reviewer:
            return bool(self.flags & PII_FLAGS) or bool(self.pii_spans)
        return bool(self.details.get("pii_types")) or bool(self.pii_spans)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return datetime.min.replace(tzinfo=UTC)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


def _recency(item: Mapping[str, Any]) -> tuple[datetime, int]:
    stamp = item.get("updated_at") or item.get("created_at")
    return _timestamp(stamp), int(item.get("id") or 0)


def _results(annotation: Mapping[str, Any], control: Control) -> list[Mapping[str, Any]]:
    return [r for r in annotation.get("result") or [] if r.get("from_name") == control.value]


def _choices(annotation: Mapping[str, Any], control: Control) -> list[str]:
    values: list[str] = []
    for result in _results(annotation, control):
        values.extend(str(c) for c in (result.get("value") or {}).get("choices") or [])
    return values


def _text(annotation: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for result in _results(annotation, Control.CORRECTED_ANSWER):
        text = (result.get("value") or {}).get("text") or []
        parts.extend([text] if isinstance(text, str) else [str(t) for t in text])
    return "\n".join(parts).strip()


def _selected(annotation: Mapping[str, Any]) -> str | None:
    for result in _results(annotation, Control.PREFERENCE):
        selected = (result.get("value") or {}).get("selected")
        if selected in ("left", "right"):
            return str(selected)
    return None


def _pii_spans(annotation: Mapping[str, Any]) -> tuple[PiiSpan, ...]:
    spans = []
    for control in (Control.PII_ANSWER, Control.PII_DIALOGUE):
        for result in _results(annotation, control):
            value = result.get("value") or {}
            labels = value.get("labels") or value.get("paragraphlabels") or []
            text = value.get("text")
            if labels and isinstance(text, str) and text.strip():
                spans.append(PiiSpan(label=str(labels[0]), text=text))
    return tuple(dict.fromkeys(spans))


def verdict_of(annotation: Mapping[str, Any], kind: ReviewKind) -> str | None:
    """The annotation's answer to the task's main question: a verdict or a preferred side."""
    if kind is ReviewKind.PREFERENCE:
        return _selected(annotation)
    choices = _choices(annotation, Control.VERDICT)
    return choices[0] if choices else None


def choose_annotation(
    annotations: Sequence[Mapping[str, Any]], kind: ReviewKind
) -> tuple[Mapping[str, Any] | None, Rule]:
    """Pick the annotation that speaks for the task, and the rule that picked it."""
    completed = [a for a in annotations if not a.get("was_cancelled")]
    if not completed:
        return None, Rule.NONE
    if len(completed) == 1:
        return completed[0], Rule.SINGLE
    ground_truth = [a for a in completed if a.get("ground_truth")]
    if ground_truth:
        return max(ground_truth, key=_recency), Rule.GROUND_TRUTH
    votes = Counter(v for a in completed if (v := verdict_of(a, kind)) is not None)
    if votes:
        (top, count), *rest = votes.most_common()
        tied = any(other == count for _, other in rest)
        if count * 2 > len(completed) and not tied:
            agreeing = [a for a in completed if verdict_of(a, kind) == top]
            return max(agreeing, key=_recency), Rule.MAJORITY
    return max(completed, key=_recency), Rule.LATEST


def latest_prediction(predictions: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    return max(predictions, key=_recency) if predictions else {}


def latest_prediction_details(predictions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ML backend's machine-readable details from the task's latest prediction."""
    for result in latest_prediction(predictions).get("result") or []:
        if result.get("from_name") != Control.FLAGS.value:
            continue
        details = (result.get("value") or {}).get(PREDICTION_DETAILS_KEY)
        if details is None:
            details = result.get(PREDICTION_DETAILS_KEY)
        if isinstance(details, Mapping):
            return dict(details)
    return {}


def _assistant(text: str) -> Message:
    return Message(role="assistant", content=text)


def decide(task: Mapping[str, Any]) -> ReviewedTask:
    """Reduce one task (as Label Studio lists it with `fields=all`) to a decision."""
    data: Mapping[str, Any] = task.get("data") or {}
    kind = ReviewKind(data.get("review_kind") or ReviewKind.CHAT.value)
    messages = task_messages(dict(data))
    annotations = task.get("annotations") or []
    chosen_annotation, rule = choose_annotation(annotations, kind)
    tools, parallel_tool_calls = task_tools(dict(data))
    if kind is ReviewKind.PREFERENCE:
        run_ids = tuple(str(data[k]) for k in ("run_id_a", "run_id_b") if data.get(k))
        prompt = messages
        answer = None
    else:
        run_ids = (str(data.get("run_id", "")),)
        has_answer = bool(messages) and messages[-1].role == "assistant"
        prompt = messages[:-1] if has_answer else messages
        answer = messages[-1] if has_answer else None
    reviewed = ReviewedTask(
        task_id=int(task["id"]),
        kind=kind,
        decision=Decision.UNREVIEWED,
        rule=rule,
        annotation_id=None,
        run_ids=run_ids,
        prompt=prompt,
        answer=answer,
        details=latest_prediction_details(task.get("predictions") or []),
        predicted_pii_spans=_pii_spans(latest_prediction(task.get("predictions") or [])),
        feedback=list(data.get("feedback") or []),
        annotators=len(annotations),
        tools=tuple(tools),
        parallel_tool_calls=parallel_tool_calls,
    )
    if chosen_annotation is None:
        if annotations:
            reviewed.decision, reviewed.reason = Decision.CANCELLED, "cancelled"
        else:
            reviewed.reason = "unreviewed"
        return reviewed
    reviewed.annotation_id = int(chosen_annotation["id"]) if "id" in chosen_annotation else None
    flag_results = _results(chosen_annotation, Control.FLAGS)
    reviewed.flags = frozenset(_choices(chosen_annotation, Control.FLAGS))
    reviewed.flags_from_reviewer = bool(flag_results)
    reviewed.pii_spans = _pii_spans(chosen_annotation)
    if kind is ReviewKind.PREFERENCE:
        return _decide_preference(reviewed, data, chosen_annotation)
    return _decide_verdict(reviewed, chosen_annotation)


def _decide_preference(
    reviewed: ReviewedTask, data: Mapping[str, Any], annotation: Mapping[str, Any]
) -> ReviewedTask:
    selected = _selected(annotation)
    if selected is None:
        reviewed.decision, reviewed.reason = Decision.INCOMPLETE, "no_preference_selected"
        return reviewed
    left, right = str(data.get("answer_a") or ""), str(data.get("answer_b") or "")
    better, worse = (left, right) if selected == "left" else (right, left)
    if not better.strip() or better == worse:
        reviewed.decision, reviewed.reason = Decision.INCOMPLETE, "no_distinct_answers"
        return reviewed
    reviewed.decision = Decision.PREFERENCE
    reviewed.chosen, reviewed.rejected = _assistant(better), _assistant(worse)
    return reviewed


def _decide_verdict(reviewed: ReviewedTask, annotation: Mapping[str, Any]) -> ReviewedTask:
    verdict = verdict_of(annotation, reviewed.kind)
    corrected = _text(annotation) or None
    if verdict == Verdict.ACCEPT:
        reviewed.decision = Decision.ACCEPTED
        if reviewed.answer is None or not reviewed.answer.display_text().strip():
            reviewed.reason = "no_answer"
    elif verdict == Verdict.EDIT:
        reviewed.decision = Decision.EDITED
        reviewed.corrected = corrected
        if corrected is None:
            reviewed.reason = "edit_without_correction"
    elif verdict == Verdict.REJECT:
        reviewed.decision, reviewed.reason = Decision.REJECTED, "rejected"
        reviewed.corrected = corrected
    else:
        reviewed.decision, reviewed.reason = Decision.INCOMPLETE, "no_verdict"
    return reviewed
