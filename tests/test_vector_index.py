"""The project vector index: processes sharing one Redis converge, restarts load a snapshot.

Each `VectorIndex` here stands for one backend process (its own memory, its own graph); they
share only the real Redis, as gunicorn workers and replicas do.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

from tracetune.backend.cache import key
from tracetune.backend.prediction.near_duplicates import NearDuplicateRule, side_signatures
from tracetune.backend.vectors.ann import VectorIndex
from tracetune.backend.vectors.duplicates import DuplicateIndex, IndexItem

DIM = 32


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(count: int, seed: int = 0) -> np.ndarray:
    """Vectors around a few hundred centres, like tasks about a few hundred topics."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, count // 20), DIM))
    return unit(
        centres[rng.integers(0, len(centres), count)] + 0.4 * rng.standard_normal((count, DIM))
    )


def exact(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, count: int) -> list[int]:
    scores = vectors @ query
    return [int(ids[i]) for i in np.argsort(-scores, kind="stable")[:count]]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def test_processes_sharing_redis_see_each_others_vectors_and_updates(client: redis.Redis) -> None:
    first, second = VectorIndex(client, "project:1"), VectorIndex(client, "project:1")
    vectors = clustered(300)
    first.append(list(range(1, 201)), vectors[:200])
    second.append(list(range(201, 301)), vectors[200:])
    assert first.size() == second.size() == 300
    moved = unit(np.ones((1, DIM)))
    second.append([7], moved)  # task 7 predicted again with changed texts: the last write wins
    assert np.array_equal(first.vectors_of([7])[7], moved[0])
    [[(nearest, score)]] = first.search(moved, 1)
    assert nearest == 7 and score == pytest.approx(1.0, abs=1e-6)
    entries = client.xlen(key("index", "project:1", "vector_log"))
    first.append([7], moved)  # unchanged vectors are not logged again
    assert client.xlen(key("index", "project:1", "vector_log")) == entries


def test_search_scores_are_exact_and_recall_holds(client: redis.Redis) -> None:
    index = VectorIndex(client, "project:2")
    vectors = clustered(5000, seed=1)
    ids = np.arange(1, 5001)
    for start in range(0, 5000, 500):
        index.append(list(ids[start : start + 500]), vectors[start : start + 500])
    queries = unit(vectors[:200] + 0.05 * np.random.default_rng(2).standard_normal((200, DIM)))
    found = index.search(queries, 10)
    recall = np.mean(
        [
            len({t for t, _ in hits} & set(exact(vectors, ids, q, 10))) / 10
            for q, hits in zip(queries, found, strict=True)
        ]
    )
    assert recall >= 0.99
    for query, hits in zip(queries, found, strict=True):
        for task_id, score in hits:
            assert score == pytest.approx(float(vectors[task_id - 1] @ query), abs=1e-6)


def test_a_restarted_process_loads_the_snapshot_and_replays_only_the_tail(
    client: redis.Redis,
) -> None:
    writer = VectorIndex(client, "project:3", snapshot_every=100)
    lagging = VectorIndex(client, "project:3", snapshot_every=100)
    vectors = clustered(1000, seed=3)
    writer.append(list(range(1, 51)), vectors[:50])
    assert lagging.size() == 50  # it has read the log up to here
    for start in range(50, 1000, 50):
        writer.append(list(range(start + 1, start + 51)), vectors[start : start + 50])
    head = client.hgetall(key("index", "project:3", "vector_snapshot"))
    assert b"generation" in head and b"trimmed_to" in head
    # The log keeps only what came after the previous snapshot, not all 20 batches.
    assert client.xlen(key("index", "project:3", "vector_log")) < 20
    restarted = VectorIndex(client, "project:3", snapshot_every=100)
    assert restarted.size() == 1000
    got = restarted.vectors_of(list(range(1, 1001)))
    assert all(np.array_equal(got[t], vectors[t - 1]) for t in range(1, 1001))
    # The process that stopped reading before the trims reloads and converges too.
    assert lagging.size() == 1000
    assert np.array_equal(lagging.vectors_of([999])[999], vectors[998])
    # Only the current snapshot's data is kept.
    generations = list(client.scan_iter(match=key("index", "project:3", "vector_snapshot:*")))
    assert len(generations) == 1


def test_vectors_of_an_older_version_are_moved_into_the_log(client: redis.Redis) -> None:
    vectors = clustered(30, seed=4)
    legacy = key("index", "project:4", "vectors")
    client.hset(legacy, mapping={str(i + 1): v.tobytes() for i, v in enumerate(vectors)})
    index = VectorIndex(client, "project:4")
    assert index.size() == 30
    assert np.array_equal(index.vectors_of([30])[30], vectors[29])
    assert not client.exists(legacy)


def test_a_twin_predicted_by_another_process_is_found(client: redis.Redis) -> None:
    """Two processes, one project: the second finds the first's task as duplicate (MinHash
    in Redis) and as nearest task (its vector index replays the first's log)."""
    vectors = clustered(3, seed=5)
    twin = unit(vectors[:1] + 0.01)
    question, answer = "How do I rotate my API key?", "Open Settings, then Keys, and rotate it."
    (original,) = side_signatures(client, [question], [answer])
    (copy,) = side_signatures(client, ["hi! how do i rotate my api key"], [answer])
    (other,) = side_signatures(client, ["What does the free plan include?"], ["Two seats."])
    rule = NearDuplicateRule()
    process_a = DuplicateIndex(client, "project:5", rule, VectorIndex(client, "project:5"))
    process_b = DuplicateIndex(client, "project:5", rule, VectorIndex(client, "project:5"))
    process_a.add_and_match([IndexItem(1, original, vectors[0]), IndexItem(2, other, vectors[2])])
    [match] = process_b.add_and_match([IndexItem(3, copy, twin[0])])
    assert match.is_duplicate and match.duplicate_of == (1,) and match.cluster_id == "c1"
    assert match.nearest_task_id == 1
    assert match.nearest_similarity == pytest.approx(float(twin[0] @ vectors[0]), abs=1e-6)


def test_a_batch_predicted_again_or_mixed_with_new_tasks_finds_the_same_pairs(
    client: redis.Redis,
) -> None:
    """Pairs inside a batch come from the stored LSH buckets when both tasks are indexed
    unchanged, and are derived in the batch when one is new or changed: every way of
    batching the same tasks gives the same duplicates."""
    answer = "Open Settings, then Keys, and rotate it."
    asks = [
        "How do I rotate my API key?",
        "hi! how do i rotate my api key",
        "How do I rotate my API key??",
    ]
    copies = side_signatures(client, asks, [answer] * 3)
    (other,) = side_signatures(client, ["What does the free plan include?"], ["Two seats."])
    vectors = clustered(6, seed=9)
    index = DuplicateIndex(
        client, "project:6", NearDuplicateRule(), VectorIndex(client, "project:6")
    )
    index.add_and_match([IndexItem(1, copies[0], vectors[0]), IndexItem(2, other, vectors[1])])

    batch = [IndexItem(3, copies[1], vectors[2]), IndexItem(4, copies[2], vectors[3])]
    first = [m.duplicate_of for m in index.add_and_match(batch)]
    again = [m.duplicate_of for m in index.add_and_match(batch)]
    assert first == again == [(1, 4), (1, 3)]

    # An indexed task beside a new one: each finds the other.
    mixed = index.add_and_match(
        [IndexItem(4, copies[2], vectors[3]), IndexItem(5, copies[1], vectors[4])]
    )
    assert [m.duplicate_of for m in mixed] == [(1, 3, 5), (1, 3, 4)]

    # A task whose text changed is compared with its new signature, inside its batch too.
    changed = index.add_and_match(
        [IndexItem(2, copies[0], vectors[1]), IndexItem(3, copies[1], vectors[2])]
    )
    assert [m.duplicate_of for m in changed] == [(1, 3, 4, 5), (1, 2, 4, 5)]
