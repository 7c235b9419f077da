"""Semantic search over the project's vector index: predicted tasks come from the index, tasks
never predicted are embedded, tasks deleted from Label Studio since are skipped."""

from __future__ import annotations

from typing import Any

import pytest
from plugins.backend_server import chat_data

from tracetune.backend.prediction.search import (
    nearest,
    project_index,
    task_texts,
    unindexed_vectors,
    vector_of,
)
from tracetune.backend.server.app import create_app
from tracetune.backend.services import Backend
from tracetune.sync.errors import NotFoundError
from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import ReviewKind

PREDICTED = {
    1: ("I was charged twice for my subscription", "We refunded the duplicate charge."),
    2: ("How do I invite a teammate?", "Open Members and click Invite."),
    3: ("The export button does nothing", "Exports run in the background; check Jobs."),
}


def task(task_id: int, prompt: str, answer: str) -> dict[str, Any]:
    return {"id": task_id, "data": chat_data(f"r{task_id}", prompt, answer)}


def test_search_reads_the_index_and_embeds_only_tasks_never_predicted(backend: Backend) -> None:
    client = create_app(backend.settings, backend=backend, warm_up=False).test_client()
    body = {
        "tasks": [task(i, *texts) for i, texts in PREDICTED.items()],
        "project": "4242.1",
        "label_config": render_label_config(ReviewKind.CHAT),
    }
    assert client.post("/predict", json=body).status_code == 200
    # Label Studio now lists tasks 1, 2 and a new task 4; task 3 was deleted there.
    twin = task(4, "My card was billed two times this month", "The extra charge is reversed.")
    listed = [task(1, *PREDICTED[1]), task(2, *PREDICTED[2]), twin]
    tasks = task_texts(backend, listed)

    other_process = Backend.create(backend.settings)  # reads the index from Redis alone
    for process in (backend, other_process):
        index = project_index(process, 4242)
        assert index.contains([1, 2, 3, 4]) == {1, 2, 3}
        extra = unindexed_vectors(process, index, tasks)
        assert set(extra) == {4}
        query = process.embedder.embed(["double payment on my bill"])[0]
        hits = nearest(index, extra, query, tasks, limit=3)
        assert [h.task_id for h in hits][:2] in ([1, 4], [4, 1])
        assert 3 not in [h.task_id for h in hits]  # deleted from Label Studio
        assert hits[0].score >= hits[1].score >= hits[2].score
        similar = nearest(index, extra, vector_of(index, extra, 1), tasks, 2, exclude=1)
        assert similar[0].task_id == 4
        with pytest.raises(NotFoundError):
            vector_of(index, extra, 99)
