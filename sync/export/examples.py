"""Reviewed tasks → training examples (SFT and preference), each with its lineage.

The formats (`to_openai`, `to_trl`) only reshape these; what becomes an example, and why, is
decided here once: accepted → SFT on the original answer; edited → SFT on the correction plus
a pair (correction chosen, original rejected); a preference task → a pair; a rejected answer →
only the rejected side of a pair, when a better answer to the same input exists (the reviewer's
correction, or an accepted/edited answer to an identical prompt).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracetune.sync.conversation import Message
from tracetune.sync.export.decisions import Decision, ReviewedTask
from tracetune.sync.export.spill import Spill


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


class ExampleBuilder:
    """Examples from tasks added one at a time, in id order (an export streams them).

    An accepted or edited task gives its SFT example as it is added. Pairs wait for `pairs`:
    a rejected answer becomes the rejected side of a pair only once every task was seen (the
    better answer to its prompt may come from a later task), and the pair files list every
    pair in task-id order. What waits is kept on disk (`spill_dir`): the pairs of edited and
    preference tasks, and the first better answer to each prompt, found by its fingerprint.
    """

    def __init__(self, spill_dir: Path) -> None:
        self._pairs: Spill[PreferenceExample] = Spill(spill_dir / "pairs")
        self._better: Spill[Message] = Spill(spill_dir / "better")
        self._better_at: dict[str, tuple[int, int]] = {}  # prompt -> (task id, position)
        self.kept_rejected = 0

    @staticmethod
    def waits(task: ReviewedTask) -> bool:
        """A rejected answer: its pair (if any) is made by `rejected_pair`, at the end."""
        return task.decision is Decision.REJECTED and task.reason == "rejected"

    def add(self, task: ReviewedTask) -> SftExample | None:
        """The task's SFT example, if it gives one; its pair waits for `pairs`."""
        if task.reason is not None:
            return None
        group = split_group(task)
        if task.decision is Decision.ACCEPTED and task.answer is not None:
            self._remember(task, task.answer)
            return SftExample((*task.prompt, task.answer), _lineage(task), group, *_tools(task))
        if task.decision is Decision.EDITED and task.corrected is not None:
            corrected = Message(role="assistant", content=task.corrected)
            self._remember(task, corrected)
            if _has_text(task.answer) and task.answer is not None:
                self._pairs.append(
                    PreferenceExample(
                        tuple(task.prompt),
                        corrected,
                        task.answer,
                        _lineage(task),
                        group,
                        *_tools(task),
                    )
                )
            return SftExample((*task.prompt, corrected), _lineage(task), group, *_tools(task))
        if task.decision is Decision.PREFERENCE and task.chosen and task.rejected:
            self._pairs.append(
                PreferenceExample(
                    tuple(task.prompt),
                    task.chosen,
                    task.rejected,
                    _lineage(task),
                    group,
                    *_tools(task),
                )
            )
        return None

    def _remember(self, task: ReviewedTask, better: Message) -> None:
        fingerprint = prompt_fingerprint(task.prompt)
        if fingerprint not in self._better_at:
            self._better_at[fingerprint] = (task.task_id, self._better.append(better))

    def rejected_pair(self, task: ReviewedTask) -> PreferenceExample | None:
        """A rejected answer as the rejected side of a pair, once every task was added: the
        better side is the reviewer's correction, else the first accepted or edited answer
        to an identical prompt; None without either."""
        if not self.waits(task) or not _has_text(task.answer) or task.answer is None:
            return None
        if task.corrected:
            better, source = Message(role="assistant", content=task.corrected), None
        elif (found := self._better_at.get(prompt_fingerprint(task.prompt))) is not None:
            better, source = self._better.at(found[1]), found[0]
        else:
            return None
        self.kept_rejected += 1
        return PreferenceExample(
            tuple(task.prompt),
            better,
            task.answer,
            _lineage(task, source),
            split_group(task),
            *_tools(task),
        )

    def pairs(self, rejected: Iterable[PreferenceExample]) -> Iterator[PreferenceExample]:
        """Every pair in task-id order: those of edited and preference tasks, merged with
        `rejected` (the rejected answers' pairs, in id order)."""
        return heapq.merge(self._pairs, rejected, key=_pair_order)

    def close(self) -> None:
        self._pairs.close()
        self._better.close()


def _pair_order(pair: PreferenceExample) -> tuple[int, int]:
    return pair.lineage.task_id, pair.lineage.chosen_from_task or 0


def build_examples(
    tasks: Sequence[ReviewedTask],
) -> tuple[list[SftExample], list[PreferenceExample], int]:
    """Examples from the tasks still kept after filters, in task-id order.

    Returns the SFT examples, the preference examples and how many rejected answers were kept
    as the rejected side of a pair.
    """
    ordered = sorted(tasks, key=lambda t: t.task_id)
    with tempfile.TemporaryDirectory(prefix="tracetune-examples-") as spill_dir:
        builder = ExampleBuilder(Path(spill_dir))
        try:
            sft = [example for task in ordered if (example := builder.add(task)) is not None]
            rejected = [p for t in ordered if (p := builder.rejected_pair(t)) is not None]
            pairs = list(builder.pairs(rejected))
        finally:
            builder.close()
    return sft, pairs, builder.kept_rejected
