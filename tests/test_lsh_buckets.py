"""LSH buckets in Redis: tasks are compared only when alike on both sides, and an index
written before `pair` buckets existed is brought up to date. Real Redis; each
`DuplicateIndex` with its own `VectorIndex` stands for one backend process."""

from __future__ import annotations

import numpy as np
import pytest
import redis
from duplicate_helpers import process

from tracetune.backend.prediction.near_duplicates import side_signatures
from tracetune.backend.vectors.duplicates import IndexItem

DIM = 16
QUESTIONS = [
    "How do I rotate my API key?",
    "hi! how do i rotate my api key",
    "How do I rotate my API key? thanks",
    "What does the free plan include?",
    "Can I export my invoices as CSV?",
    "can i export my invoices as csv please",
]
ANSWERS = [
    "Open Settings, then Keys, and rotate it. The old key stops working within a minute.",
    "The free plan includes two seats, one project and a week of history.",
    "Yes: Billing, Invoices, then Export as CSV at the top of the list.",
]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def vector(seed: int) -> np.ndarray:
    found = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return found / np.linalg.norm(found)


def test_tasks_alike_on_one_side_only_are_never_compared(client: redis.Redis) -> None:
    """The same answer to another question, or another answer to the same question, shares
    no `pair` bucket: no comparison, score 0. The twin alike on both sides is found."""
    asks = [QUESTIONS[0], QUESTIONS[3], QUESTIONS[0], QUESTIONS[1]]
    answers = [ANSWERS[0], ANSWERS[0], ANSWERS[1], ANSWERS[0]]
    sides = side_signatures(client, asks, answers)
    index = process(client, "project:lsh-sides")
    index.add_and_match([IndexItem(1, sides[0], vector(1))])
    other_question, other_answer, twin = index.add_and_match(
        [IndexItem(i, sides[i - 1], vector(i)) for i in (2, 3, 4)]
    )
    assert other_question.score == 0.0 and not other_question.is_duplicate
    assert other_answer.score == 0.0 and not other_answer.is_duplicate
    assert twin.duplicate_of == (1,) and twin.score >= 0.75


def test_an_index_from_before_pair_buckets_is_indexed_into_them(client: redis.Redis) -> None:
    """A project indexed by the earlier layout (signatures and one-side buckets only): its
    tasks are put into `pair` buckets from their stored signatures on first use, so a twin
    predicted now finds them."""
    scope = "project:lsh-migrated"
    sides = side_signatures(client, [QUESTIONS[0], QUESTIONS[1]], [ANSWERS[0], ANSWERS[0]])
    process(client, scope).add_and_match([IndexItem(1, sides[0], vector(1))])
    prefix = f"tracetune:backend:index:{scope}:"
    for name in client.scan_iter(match=f"{prefix}lsh:pair:*"):
        client.delete(name)
    client.delete(f"{prefix}lsh_families")

    [twin] = process(client, scope).add_and_match([IndexItem(2, sides[1], vector(2))])
    assert twin.duplicate_of == (1,)
    assert client.get(f"{prefix}lsh_families") == b"pair"


def test_the_nearest_task_prefers_the_lower_id_among_equals(client: redis.Redis) -> None:
    """Equal vectors in the index and in the batch: the lowest id is the nearest task,
    wherever it is. (Basis vectors, so every way of computing a cosine gives exactly 1.)"""
    scope = "project:lsh-nearest"
    sides = side_signatures(client, QUESTIONS[3:6], ANSWERS)
    same = np.eye(DIM, dtype=np.float32)[0]
    index = process(client, scope)
    index.add_and_match([IndexItem(5, sides[0], same), IndexItem(9, sides[1], np.roll(same, 1))])
    found = index.add_and_match([IndexItem(3, sides[2], same), IndexItem(7, sides[1], same)])
    assert [m.nearest_task_id for m in found] == [5, 3]
    assert found[0].nearest_similarity == 1.0
