"""The texts of a Label Studio task, read and checked the way the sync wrote them.

`TEXT_FIELDS` (in `tracetune.sync.review_kinds`) says which task-data keys hold text per review
kind; this module refuses tasks the backend cannot analyse with a message naming the task and
the field, instead of predicting nothing or crashing on a number where text belongs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tracetune.backend.signals.base import Reads
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.review_kinds import TEXT_FIELDS, ReviewKind

ANSWER_FIELDS = ("answer", "answer_a", "answer_b")


class TextTooLongError(InvalidInputError):
    """A text is longer than the backend accepts (TRACETUNE_BACKEND_MAX_TEXT_CHARS)."""


@dataclass(frozen=True)
class TaskTexts:
    task_id: int
    kind: ReviewKind
    data: Mapping[str, Any]
    fields: dict[str, str]  # TEXT_FIELDS of the kind, in order; may be empty strings

    def texts(self, reads: Reads) -> dict[str, str]:
        """Non-empty texts a signal or concept with this `reads` looks at, by field."""
        if reads is Reads.ANSWERS:
            chosen = {k: v for k, v in self.fields.items() if k in ANSWER_FIELDS}
        elif reads is Reads.PROMPT:
            chosen = {k: v for k, v in self.fields.items() if k == "prompt"}
        else:
            chosen = dict(self.fields)
        return {k: v for k, v in chosen.items() if v.strip()}

    @cached_property
    def user_turns(self) -> str:
        """Every user message of the dialogue, else the prompt field (kept: near-duplicates,
        search and the caches' keys each ask for it).

        System prompts are left out on purpose: one application sends the same system prompt
        with every run, so any text that includes it makes all of its tasks look alike.
        """
        dialogue = self.data.get("dialogue")
        turns = [
            str(p.get("content") or "")
            for p in dialogue if isinstance(p, Mapping) and p.get("role") == "user"
        ] if isinstance(dialogue, list) else []  # fmt: skip
        joined = "\n".join(t for t in turns if t.strip())
        return joined or self.fields.get("prompt", "")

    def similarity_texts(self) -> list[str]:
        """What near-duplicates and semantic search compare: the user turns, then each answer."""
        answers = [v for k, v in self.fields.items() if k in ANSWER_FIELDS and v.strip()]
        return [t for t in (self.user_turns, *answers) if t.strip()]

    @cached_property
    def answers(self) -> str:
        """The answers under review as one text (both of a preference pair): the answer side
        of near-duplicates."""
        return "\n".join(v for k, v in self.fields.items() if k in ANSWER_FIELDS and v.strip())

    @property
    def primary(self) -> str:
        """The text a reviewer judges first: the answer, else the prompt."""
        for name in (*ANSWER_FIELDS, "prompt"):
            if self.fields.get(name, "").strip():
                return self.fields[name]
        return next((v for v in self.fields.values() if v.strip()), "")


def _task_id(task: Any, position: int) -> int:
    if not isinstance(task, Mapping):
        raise InvalidInputError(f"tasks[{position}] must be an object, got {type(task).__name__}")
    task_id = task.get("id")
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        raise InvalidInputError(f"tasks[{position}] needs an integer 'id', got {task_id!r}")
    return task_id


def read_task(task: Any, position: int, default_kind: ReviewKind, max_chars: int) -> TaskTexts:
    """Check one task from a request and return its texts."""
    task_id = _task_id(task, position)
    data = task.get("data")
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"task {task_id} needs a 'data' object")
    try:
        kind = ReviewKind(data.get("review_kind") or default_kind)
    except ValueError as exc:
        raise InvalidInputError(
            f"task {task_id}: unknown review_kind {data.get('review_kind')!r}"
        ) from exc
    fields: dict[str, str] = {}
    for name in TEXT_FIELDS[kind]:
        if name not in data:
            raise InvalidInputError(f"task {task_id} has no {name!r} field ({kind.value} task)")
        value = data[name]
        if not isinstance(value, str):
            raise InvalidInputError(
                f"task {task_id}: field {name!r} must be a string, got {type(value).__name__}"
            )
        if len(value) > max_chars:
            raise TextTooLongError(
                f"task {task_id}: field {name!r} has {len(value):,} characters; the backend "
                f"accepts up to {max_chars:,} (TRACETUNE_BACKEND_MAX_TEXT_CHARS)"
            )
        fields[name] = value
    if not any(v.strip() for v in fields.values()):
        raise InvalidInputError(
            f"task {task_id} has no text to analyse: {', '.join(fields)} are all empty"
        )
    return TaskTexts(task_id, kind, data, fields)
