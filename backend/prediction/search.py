"""Semantic search over a project's tasks, from the embeddings the backend cached.

Task vectors come from the project's near-duplicate index (every predicted task is there);
tasks never predicted are embedded through the same cache, so a search right after a sync
works too and costs one embedding per new text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracetune.backend.prediction.predictor import task_vector
from tracetune.backend.services import Backend
from tracetune.backend.task_texts import TaskTexts, read_task
from tracetune.backend.vectors.duplicates import DuplicateIndex
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


def project_vectors(
    backend: Backend, project_id: int, tasks: dict[int, TaskTexts]
) -> dict[int, np.ndarray]:
    indexed = DuplicateIndex(backend.client, f"project:{project_id}").vectors()
    vectors = {t: v for t, v in indexed.items() if t in tasks}
    missing = [tasks[t] for t in tasks if t not in vectors]
    texts = [text for task in missing for text in task.similarity_texts()]
    embedded = dict(zip(texts, backend.embedder.embed(texts), strict=True))
    vectors.update({task.task_id: task_vector(task, embedded) for task in missing})
    return vectors


def nearest(
    vectors: dict[int, np.ndarray],
    query: np.ndarray,
    tasks: dict[int, TaskTexts],
    limit: int,
    exclude: int | None = None,
) -> list[Hit]:
    ids = [t for t in vectors if t != exclude]
    if not ids:
        raise NotFoundError("the project has no tasks with text to search")
    scores = np.stack([vectors[t] for t in ids]) @ query
    order = np.argsort(-scores)[:limit]
    return [Hit(ids[i], round(float(scores[i]), 4), tasks[ids[i]].primary) for i in order]
