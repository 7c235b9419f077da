"""A task's own analysis, kept per task content and model state, so a task predicted again
is one cache read instead of every signal's and concept's.

What a task's signals, concepts, spans, language and stats say depends on its data and on the
models alone, not on the other tasks of the project (near-duplicates do, and are kept apart,
brought up to date as the project changes: `vectors/kept_matches.py`). So that part is stored
under a namespace that digests everything it depends on: each signal's version, each
concept's definition, fitted version and threshold, the label config's targets, the
embedding model and runtime, and this module's `FORMAT`. Retraining a concept or editing the
config moves the namespace; entries of an old one expire after `TTL_S`. The key within it is
a digest of the task's data as Label Studio sent it (review kind included), so an edited task
is analysed afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis

from tracetune.backend.cache import BatchRead, key
from tracetune.backend.signals import Span
from tracetune.backend.task_texts import TaskTexts

#: Bump when what an analysis holds or how it is computed changes.
FORMAT = 1
#: Entries of a namespace no request reads any more (a retrained concept, an edited config)
#: leave Redis after this long; an entry read again is not refreshed, it is recomputed then.
TTL_S = 30 * 24 * 3600


@dataclass
class OwnAnalysis:
    """What a task's own texts say, whatever else is in the project."""

    scores: dict[str, float]  # per flag on the text it judges, and per concept by name
    fired_in: dict[str, dict[str, float]]  # per fired flag: where, and the score there
    text_spans: list[Span]
    paragraph_spans: list[tuple[int, Span]]
    pii_types: list[str]
    language: str | None
    stats: dict[str, Any]
    prompt_scores: dict[str, float]
    prompt_language: str | None
    spans_in: dict[str, list[Span]]

    def to_json(self) -> bytes:
        data = asdict(self)
        data["paragraph_spans"] = [[i, asdict(s)] for i, s in self.paragraph_spans]
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes) -> OwnAnalysis:
        data = orjson.loads(raw)
        return cls(
            scores=data["scores"],
            fired_in=data["fired_in"],
            text_spans=[Span(**s) for s in data["text_spans"]],
            paragraph_spans=[(i, Span(**s)) for i, s in data["paragraph_spans"]],
            pii_types=data["pii_types"],
            language=data["language"],
            stats=data["stats"],
            prompt_scores=data["prompt_scores"],
            prompt_language=data["prompt_language"],
            spans_in={w: [Span(**s) for s in spans] for w, spans in data["spans_in"].items()},
        )


def namespace(state: Mapping[str, Any]) -> str:
    """The namespace of analyses made under `state` (everything they depend on)."""
    digest = hashlib.sha256(
        json.dumps({"format": FORMAT, **state}, sort_keys=True, default=str).encode()
    ).hexdigest()[:32]
    return f"analysis:{digest}"


def task_digest(task: TaskTexts) -> str:
    """A digest of the task's data as sent (and its review kind): equal data, equal digest."""
    try:
        canonical = orjson.dumps(task.data, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # keys that are not strings: Python's json says it the same way each time
        canonical = json.dumps(task.data, sort_keys=True, default=str).encode()
    return hashlib.sha256(task.kind.value.encode() + b"\0" + canonical).hexdigest()


class AnalysisCache:
    """The analyses of one namespace."""

    def __init__(self, client: redis.Redis, space: str) -> None:
        self.client = client
        self.space = space

    def keys(self, tasks: Sequence[TaskTexts]) -> list[str]:
        return [key(self.space, task_digest(t)) for t in tasks]

    def get(self, tasks: Sequence[TaskTexts], reads: BatchRead) -> dict[int, OwnAnalysis]:
        """The stored analyses of `tasks`, by task id (absent: not analysed yet)."""
        found = {}
        for task, raw in zip(tasks, reads.get(self.keys(tasks)), strict=True):
            if raw is not None:
                found[task.task_id] = OwnAnalysis.from_json(raw)
        return found

    def put(self, analysed: Sequence[tuple[TaskTexts, OwnAnalysis]]) -> None:
        if not analysed:
            return
        pipe = self.client.pipeline(transaction=False)
        for name, (_, analysis) in zip(self.keys([t for t, _ in analysed]), analysed, strict=True):
            pipe.set(name, analysis.to_json(), ex=TTL_S)
        pipe.execute()
