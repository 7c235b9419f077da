"""Filters chosen on the command line, applied to reviewed tasks before examples are built.

Each filter either keeps a task or sets its `reason`, so the manifest can count every task
dropped and why. PII redaction replaces each span a reviewer labelled (`pii_answer` /
`pii_dialogue` annotations) with a typed placeholder such as `[EMAIL]`, everywhere the span's
text occurs in the task's messages and answers. Without reviewer spans, a flagged task is
redacted over the spans the ML backend detected (its latest prediction's span results); a task
flagged as PII with no span from either cannot be redacted and is dropped.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from tracetune.sync.conversation import Message
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.export.decisions import Decision, PiiSpan, ReviewedTask


class PiiPolicy(StrEnum):
    KEEP = "keep"
    DROP = "drop"
    REDACT = "redact"


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_FEEDBACK_RULE = re.compile(r"^\s*([^<>=\s]+)\s*(>=|<=|>|<|=)?\s*(-?[0-9.]+)?\s*$")


@dataclass(frozen=True)
class FeedbackRule:
    """`KEY` (any feedback with that key) or `KEY>=0.5` (a score compared to a number)."""

    key: str
    op: str | None = None
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> FeedbackRule:
        match = _FEEDBACK_RULE.match(text)
        if not match or (match.group(2) is None) != (match.group(3) is None):
            raise InvalidInputError(f"--feedback takes KEY or KEY>=NUMBER, got {text!r}")
        key, op, value = match.groups()
        return cls(key, op, float(value) if value is not None else None)

    def matches(self, feedback: Sequence[Mapping[str, Any]]) -> bool:
        for item in feedback:
            if item.get("key") != self.key:
                continue
            if self.op is None or self.value is None:
                return True
            score = item.get("score")
            if isinstance(score, int | float) and _COMPARISONS[self.op](float(score), self.value):
                return True
        return False

    def __str__(self) -> str:
        return self.key if self.op is None else f"{self.key}{self.op}{self.value:g}"


def parse_max_scores(pairs: Sequence[str]) -> dict[str, float]:
    """`CONCEPT=0.8` pairs → {concept: threshold}."""
    thresholds = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            thresholds[name.strip()] = float(value)
        except ValueError:
            raise InvalidInputError(f"--max-score takes CONCEPT=NUMBER, got {pair!r}") from None
        if not sep or not name.strip():
            raise InvalidInputError(f"--max-score takes CONCEPT=NUMBER, got {pair!r}")
    return thresholds


@dataclass(frozen=True)
class ExportFilters:
    pii: PiiPolicy = PiiPolicy.REDACT
    max_scores: Mapping[str, float] = field(default_factory=dict)
    dedupe: bool = False
    feedback: tuple[FeedbackRule, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "pii": self.pii.value,
            "max_scores": dict(sorted(self.max_scores.items())),
            "dedupe": self.dedupe,
            "feedback": [str(rule) for rule in self.feedback],
        }


def _redact_text(text: str, spans: Sequence[PiiSpan]) -> str:
    for span in spans:
        text = text.replace(span.text, f"[{span.label}]")
    return text


def _redact_message(message: Message | None, spans: Sequence[PiiSpan]) -> Message | None:
    if message is None:
        return None
    return message.model_copy(update={"content": _redact_text(message.content, spans)})


def redact(task: ReviewedTask, found: Sequence[PiiSpan]) -> ReviewedTask:
    """The task with every span's text replaced by `[LABEL]`, longest spans first."""
    spans = sorted(found, key=lambda s: len(s.text), reverse=True)
    return replace(
        task,
        prompt=[
            m.model_copy(update={"content": _redact_text(m.content, spans)}) for m in task.prompt
        ],
        answer=_redact_message(task.answer, spans),
        chosen=_redact_message(task.chosen, spans),
        rejected=_redact_message(task.rejected, spans),
        corrected=_redact_text(task.corrected, spans) if task.corrected else task.corrected,
    )


def _candidate(task: ReviewedTask) -> bool:
    """Tasks that can still contribute to an example (rejected ones as a rejected side)."""
    return task.reason is None or (task.decision is Decision.REJECTED and task.reason == "rejected")


def _filter_one(task: ReviewedTask, filters: ExportFilters) -> ReviewedTask:
    if filters.feedback and not all(rule.matches(task.feedback) for rule in filters.feedback):
        return replace(task, reason="feedback_filter")
    scores = task.details.get("scores") or {}
    for name, threshold in sorted(filters.max_scores.items()):
        score = scores.get(name)
        if isinstance(score, int | float) and score > threshold:
            return replace(task, reason=f"score_over_threshold:{name}")
    if filters.pii is PiiPolicy.KEEP:
        return task
    if filters.pii is PiiPolicy.DROP and task.pii_flagged:
        return replace(task, reason="pii")
    if filters.pii is PiiPolicy.REDACT:
        if task.pii_spans:
            return redact(task, task.pii_spans)
        if task.pii_flagged and task.predicted_pii_spans:
            return redact(task, task.predicted_pii_spans)
        if task.pii_flagged:
            return replace(task, reason="pii_unredactable")
    return task


class TaskFilter:
    """The filters one task at a time, tasks in id order (an export streams them).

    Near-duplicate removal keeps one task per cluster: the lowest task id among those giving
    an SFT example or pair of their own, else the lowest rejected one. A task of the first
    kind is decided as it comes (the lowest id of its cluster comes first); a rejected one
    only once every task was seen (`waits`, then `settle` in id order), since a later task
    of its cluster may give an example of its own.
    """

    def __init__(self, filters: ExportFilters) -> None:
        self.filters = filters
        self._contributing: set[str] = set()
        self._rejected: set[str] = set()

    def admit(self, task: ReviewedTask) -> ReviewedTask:
        """The task after the filters, except the near-duplicate rule of a rejected one."""
        if not _candidate(task):
            return task
        task = _filter_one(task, self.filters)
        cluster = task.cluster_id
        if self.filters.dedupe and task.reason is None and cluster is not None:
            if cluster in self._contributing:
                return replace(task, reason="near_duplicate")
            self._contributing.add(cluster)
        return task

    def waits(self, task: ReviewedTask) -> bool:
        """A rejected candidate after `admit`: near-duplicate removal decides it last."""
        return self.filters.dedupe and _candidate(task) and task.reason is not None

    def settle(self, task: ReviewedTask) -> ReviewedTask:
        """A task that waited, once every task was admitted; call in id order."""
        cluster = task.cluster_id
        if cluster is None:
            return task
        if cluster in self._contributing or cluster in self._rejected:
            return replace(task, reason="near_duplicate")
        self._rejected.add(cluster)
        return task


def apply_filters(tasks: Sequence[ReviewedTask], filters: ExportFilters) -> list[ReviewedTask]:
    """Tasks after filtering, same order; dropped ones keep their decision and gain a reason
    (see `TaskFilter`)."""
    screen = TaskFilter(filters)
    admitted = [screen.admit(t) for t in sorted(tasks, key=lambda t: t.task_id)]
    settled = {t.task_id: screen.settle(t) if screen.waits(t) else t for t in admitted}
    return [settled[t.task_id] for t in tasks]
