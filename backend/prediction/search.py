"""Semantic search over a project's tasks, from the embeddings the backend cached.

Task vectors come from the project's vector index (every predicted task is there; an HNSW
graph over them answers in milliseconds however large the project); tasks never predicted are
embedded through the same cache and compared exactly, so a search right after a sync works too
and costs one embedding per new text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracetune.backend.prediction.predictor import task_vectors
from tracetune.backend.services import Backend
from tracetune.backend.task_texts import TaskTexts, read_task
from tracetune.backend.vectors.ann import VectorIndex
from tracetune.sync.errors import InvalidInputError, NotFoundError
from tracetune.sync.review_kinds import ReviewKind


@dataclass(frozen=True)
class Hit:
    task_id: int
    score: float
    text: str


def task_texts(backend: Backend, tasks: Iterable[Mapping[str, Any]]) -> dict[int, TaskTexts]:
    """The analysable tasks among Label Studio's (others, e.g. empty ones, are skipped)."""
    found = {}
    limit = backend.settings.tracetune_backend_max_text_chars
    for position, task in enumerate(tasks):
        try:
            texts = read_task(task, position, ReviewKind.CHAT, limit)
        except InvalidInputError:
            continue
        found[texts.task_id] = texts
    return found


def project_index(backend: Backend, project_id: int) -> VectorIndex:
    """The project's vector index, as the predictions built it."""
    return backend.vector_indexes.get(f"project:{project_id}")


def unindexed_vectors(
    backend: Backend, index: VectorIndex, tasks: dict[int, TaskTexts]
) -> dict[int, np.ndarray]:
    """Vectors of the tasks never predicted, embedded through the cache (not indexed)."""
    indexed = index.contains(list(tasks))
    missing = [tasks[t] for t in tasks if t not in indexed]
    texts = [text for task in missing for text in task.similarity_texts()]
    embedded = dict(zip(texts, backend.embedder.embed(texts), strict=True))
    return dict(zip([t.task_id for t in missing], task_vectors(missing, embedded), strict=True))


def vector_of(index: VectorIndex, extra: dict[int, np.ndarray], task_id: int) -> np.ndarray:
    found = extra.get(task_id)
    if found is None:
        found = index.vectors_of([task_id]).get(task_id)
    if found is None:
        raise NotFoundError(f"task {task_id} is not in the project (or has no text)")
    return found


def nearest(
    index: VectorIndex,
    extra: dict[int, np.ndarray],
    query: np.ndarray,
    tasks: dict[int, TaskTexts],
    limit: int,
    exclude: int | None = None,
) -> list[Hit]:
    """The `limit` tasks closest to `query`: the index's, and the unindexed ones exactly.

    The index may hold tasks deleted from Label Studio since; they are skipped, so it is
    asked for as many more.
    """
    stale = index.size() - len(index.contains(list(tasks)))
    scores = {
        t: s
        for t, s in index.search(query[np.newaxis], limit + 1 + stale)[0]
        if t in tasks and t != exclude
    }
    scores.update({t: float(v @ query) for t, v in extra.items() if t != exclude})
    if not scores:
        raise NotFoundError("the project has no tasks with text to search")
    ranked = sorted(scores, key=lambda t: (-scores[t], t))[:limit]
    return [Hit(t, round(scores[t], 4), tasks[t].primary) for t in ranked]
