"""The tasks of one `/predict` request, each read on its own.

Label Studio stores nothing of a batch the backend answers with an error, so one odd task
(imported by hand, made by another tool, with a number where text belongs or a field missing)
must not cost every other task its pre-labels. Each task is read here with what is wrong with
it written down: a missing or unusable text field is judged as empty and named; a task with
nothing left to judge gets no analysis, only its reason. A config that is not one of ours
(its answer under another key) is followed to the key its objects display.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tracetune.backend.prediction.label_targets import LabelTargets
from tracetune.backend.task_texts import TaskTexts, read_task
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.review_kinds import TEXT_FIELDS, ReviewKind


@dataclass
class BatchTask:
    position: int
    task_id: int | None
    texts: TaskTexts | None  # None: nothing could be judged
    problems: list[str] = field(default_factory=list)
    predictions: list[Mapping[str, Any]] = field(default_factory=list)  # Label Studio's


def _kind(data: Mapping[str, Any], targets: LabelTargets, problems: list[str]) -> ReviewKind:
    named = data.get("review_kind")
    if named in (None, ""):
        return targets.kind
    try:
        return ReviewKind(named)
    except ValueError:
        problems.append(f"unknown review_kind {named!r}: read as {targets.kind.value}")
        return targets.kind


def _text_fields(
    data: Mapping[str, Any], kind: ReviewKind, targets: LabelTargets, max_chars: int
) -> tuple[dict[str, Any], list[str]]:
    """A copy of the task data whose text fields are all strings, and what was wrong."""
    usable = dict(data)
    problems: list[str] = []
    for name in TEXT_FIELDS[kind]:
        value = data.get(name)
        if name == "answer" and value is None and targets.answer_key not in (None, name):
            value = data.get(targets.answer_key or "")
        if value is None:
            problems.append(f"no {name!r} field: judged without it")
            value = ""
        elif not isinstance(value, str):
            problems.append(f"{name!r} is {type(value).__name__}, not text: judged without it")
            value = ""
        elif len(value) > max_chars:
            problems.append(
                f"{name!r} has {len(value):,} characters, over the {max_chars:,} the backend "
                "reads (TRACETUNE_BACKEND_MAX_TEXT_CHARS): judged without it"
            )
            value = ""
        usable[name] = value
    return usable, problems


def read_one(raw: Any, position: int, targets: LabelTargets, max_chars: int) -> BatchTask:
    if not isinstance(raw, Mapping):
        return BatchTask(position, None, None, [f"tasks[{position}] is not an object"])
    task_id = raw.get("id")
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        return BatchTask(position, None, None, [f"tasks[{position}] has no integer 'id'"])
    predictions = [p for p in raw.get("predictions") or [] if isinstance(p, Mapping)]
    data = raw.get("data")
    if not isinstance(data, Mapping):
        return BatchTask(position, task_id, None, ["the task has no 'data' object"], predictions)
    problems: list[str] = []
    kind = _kind(data, targets, problems)
    usable, field_problems = _text_fields(data, kind, targets, max_chars)
    problems += field_problems
    usable["review_kind"] = kind.value
    try:
        texts = read_task({"id": task_id, "data": usable}, position, kind, max_chars)
    except InvalidInputError as exc:
        return BatchTask(position, task_id, None, [*problems, f"not judged: {exc}"], predictions)
    return BatchTask(position, task_id, texts, problems, predictions)


def read_batch(raw_tasks: list[Any], targets: LabelTargets, max_chars: int) -> list[BatchTask]:
    return [read_one(raw, i, targets, max_chars) for i, raw in enumerate(raw_tasks)]
