"""Reviewed tasks → training examples (SFT and preference), each with its lineage.

The formats (`to_openai`, `to_trl`) only reshape these; what becomes an example, and why, is
decided here once: accepted → SFT on the original answer; edited → SFT on the correction plus
a pair (correction chosen, original rejected); a preference task → a pair; a rejected answer →
only the rejected side of a pair, when a better answer to the same input exists (the reviewer's
correction, or an accepted/edited answer to an identical prompt).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracetune.sync.conversation import Message
from tracetune.sync.export.decisions import Decision, ReviewedTask


@dataclass(frozen=True)
class Lineage:
    """Where an example came from, down to the annotation and the LangSmith runs."""

    task_id: int
    annotation_id: int | None
    run_ids: tuple[str, ...]
    decision: str
    rule: str
    chosen_from_task: int | None = None

    def as_dict(self) -> dict[str, object]:
        record: dict[str, object] = {
            "task_id": self.task_id,
            "annotation_id": self.annotation_id,
            "run_ids": list(self.run_ids),
            "decision": self.decision,
            "rule": self.rule,
        }
        if self.chosen_from_task is not None:
            record["chosen_from_task"] = self.chosen_from_task
        return record


@dataclass(frozen=True)
class SftExample:
    """A conversation whose final assistant message is the one to learn from.

    `tools` are the function definitions the model was offered (OpenAI's chat shape) and
    `parallel_tool_calls` whether it could call several at once (None: not recorded).
    """

    messages: tuple[Message, ...]
    lineage: Lineage
    group: str
    tools: tuple[Mapping[str, Any], ...] = ()
    parallel_tool_calls: bool | None = None


@dataclass(frozen=True)
class PreferenceExample:
    prompt: tuple[Message, ...]
    chosen: Message
    rejected: Message
    lineage: Lineage
    group: str
    tools: tuple[Mapping[str, Any], ...] = ()
    parallel_tool_calls: bool | None = None


def prompt_fingerprint(messages: Iterable[Message]) -> str:
    payload = [m.model_dump(exclude_none=True) for m in messages]
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def split_group(task: ReviewedTask) -> str:
    """Examples sharing a group always land in the same split: near-duplicates stay together."""
    cluster = task.cluster_id
    return f"cluster:{cluster}" if cluster else f"prompt:{prompt_fingerprint(task.prompt)}"


def _lineage(task: ReviewedTask, chosen_from: int | None = None) -> Lineage:
    return Lineage(
        task_id=task.task_id,
        annotation_id=task.annotation_id,
        run_ids=task.run_ids,
        decision=task.decision.value,
        rule=task.rule.value,
        chosen_from_task=chosen_from,
    )


def _tools(task: ReviewedTask) -> tuple[tuple[Mapping[str, Any], ...], bool | None]:
    return task.tools, task.parallel_tool_calls


def _has_text(message: Message | None) -> bool:
    return message is not None and bool(message.display_text().strip())


def build_examples(
    tasks: Sequence[ReviewedTask],
) -> tuple[list[SftExample], list[PreferenceExample], int]:
    """Examples from the tasks still kept after filters, in task-id order.

    Returns the SFT examples, the preference examples and how many rejected answers were kept
    as the rejected side of a pair.
    """
    ordered = sorted(tasks, key=lambda t: t.task_id)
    sft: list[SftExample] = []
    pairs: list[PreferenceExample] = []
    better_by_prompt: dict[str, tuple[ReviewedTask, Message]] = {}
    for task in ordered:
        if task.reason is not None:
            continue
        group = split_group(task)
        if task.decision is Decision.ACCEPTED and task.answer is not None:
            sft.append(
                SftExample((*task.prompt, task.answer), _lineage(task), group, *_tools(task))
            )
            better_by_prompt.setdefault(prompt_fingerprint(task.prompt), (task, task.answer))
        elif task.decision is Decision.EDITED and task.corrected is not None:
            corrected = Message(role="assistant", content=task.corrected)
            sft.append(SftExample((*task.prompt, corrected), _lineage(task), group, *_tools(task)))
            better_by_prompt.setdefault(prompt_fingerprint(task.prompt), (task, corrected))
            if _has_text(task.answer) and task.answer is not None:
                pairs.append(
                    PreferenceExample(
                        tuple(task.prompt),
                        corrected,
                        task.answer,
                        _lineage(task),
                        group,
                        *_tools(task),
                    )
                )
        elif task.decision is Decision.PREFERENCE and task.chosen and task.rejected:
            pairs.append(
                PreferenceExample(
                    tuple(task.prompt),
                    task.chosen,
                    task.rejected,
                    _lineage(task),
                    group,
                    *_tools(task),
                )
            )
    kept_rejected = 0
    for task in ordered:
        if task.decision is not Decision.REJECTED or task.reason != "rejected":
            continue
        if not _has_text(task.answer) or task.answer is None:
            continue
        if task.corrected:
            better, source = Message(role="assistant", content=task.corrected), None
        elif (found := better_by_prompt.get(prompt_fingerprint(task.prompt))) is not None:
            better, source = found[1], found[0].task_id
        else:
            continue
        pairs.append(
            PreferenceExample(
                tuple(task.prompt),
                better,
                task.answer,
                _lineage(task, source),
                split_group(task),
                *_tools(task),
            )
        )
        kept_rejected += 1
    pairs.sort(key=lambda p: (p.lineage.task_id, p.lineage.chosen_from_task or 0))
    return sft, pairs, kept_rejected
