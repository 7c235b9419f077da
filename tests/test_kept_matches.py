"""Kept near-duplicate matches: a task predicted again reads the match it was given, brought up
to date, and that is exactly what matching it afresh finds, through new twins, closer
vectors, edits, other batchings and another process writing at the same time. Real Redis and
real MinHash signatures; each `DuplicateIndex` with its own `VectorIndex` stands for one
backend process."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pytest
import redis
from duplicate_helpers import process

from tracetune.backend.cache import key
from tracetune.backend.prediction.near_duplicates import NearDuplicateRule, side_signatures
from tracetune.backend.vectors.ann import VectorIndex
from tracetune.backend.vectors.duplicates import DuplicateIndex, DuplicateMatch, IndexItem

DIM = 16
TOPICS = ["API keys", "invoices", "webhooks", "seats", "exports", "audit logs", "SSO"]
ASKS = ["How do I reset {t}?", "Why are my {t} failing since Monday?", "Where do I find {t}?"]
VARIANTS = ["{q}", "hi! {q}", "{q} thanks", "{q}?", "{q} please"]
ANSWERS = [
    "Open Settings, then {t}, and press reset. It applies within a minute for everyone.",
    "Check the {t} page: failures since Monday come from the new region setting.",
]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


class Afresh:
    """The reference: the same tasks in another scope, every kept match forgotten before each
    request, so every task is matched afresh."""

    def __init__(self, client: redis.Redis, scope: str) -> None:
        self.client, self.index = client, process(client, scope)
        self.matches = key("index", scope, "matches")

    def add_and_match(self, items: Sequence[IndexItem]) -> list[DuplicateMatch]:
        self.client.delete(self.matches)
        return self.index.add_and_match(items)


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def tasks(client: redis.Redis, count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        topic = rng.choice(TOPICS)
        ask = rng.choice(ASKS).format(t=topic)
        answer = rng.choice(ANSWERS).format(t=topic)
        if rng.random() < 0.3:
            answer += f" Ticket {rng.randrange(1000)}."
        texts.append((rng.choice(VARIANTS).format(q=ask), answer))
    return texts


def items_of(
    client: redis.Redis, ids: Sequence[int], texts: dict[int, tuple[str, str]], vectors: dict
) -> list[IndexItem]:
    sides = side_signatures(client, [texts[t][0] for t in ids], [texts[t][1] for t in ids])
    return [IndexItem(t, s, vectors[t]) for t, s in zip(ids, sides, strict=True)]


def same(kept: Sequence[DuplicateMatch], afresh: Sequence[DuplicateMatch]) -> None:
    for mine, theirs in zip(kept, afresh, strict=True):
        assert (mine.cluster_id, mine.is_duplicate, mine.score, mine.duplicate_of) == (
            theirs.cluster_id,
            theirs.is_duplicate,
            theirs.score,
            theirs.duplicate_of,
        )
        assert mine.nearest_task_id == theirs.nearest_task_id
        assert mine.nearest_similarity == pytest.approx(theirs.nearest_similarity, abs=1e-5)


def test_kept_matches_are_what_matching_afresh_finds(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    texts = dict(enumerate(tasks(client, 160, seed=1), start=1))
    vectors = {t: unit(rng.standard_normal(DIM)) for t in texts}
    kept, afresh = process(client, "project:kept"), Afresh(client, "project:afresh")
    made_afresh: list[int] = []
    real_match = kept._match

    def counting(fresh, ordered, state):  # type: ignore[no-untyped-def]
        made_afresh.extend(item.task_id for item in fresh)
        return real_match(fresh, ordered, state)

    monkeypatch.setattr(kept, "_match", counting)

    def both(ids: Sequence[int]) -> None:
        batch = items_of(client, ids, texts, vectors)
        same(kept.add_and_match(batch), afresh.add_and_match(batch))

    ids = list(texts)
    for start in range(0, len(ids), 40):  # first pass
        both(ids[start : start + 40])
    shuffled = random.Random(5).sample(ids, len(ids))
    made_afresh.clear()
    for start in range(0, len(ids), 30):  # predicted again, batched otherwise
        both(shuffled[start : start + 30])
    assert len(made_afresh) < len(ids) / 2  # most matches were kept (and found right)

    # Twins of earlier tasks with vectors close to theirs, beside old tasks; then edits.
    for twin, of in zip(range(161, 181), random.Random(7).sample(ids, 20), strict=True):
        texts[twin] = (texts[of][0] + "!", texts[of][1])
        vectors[twin] = unit(vectors[of] + 0.05 * rng.standard_normal(DIM))
    both(list(range(161, 171)) + shuffled[:20])
    both(list(range(171, 181)))
    # Edits: the tasks nearest to others get new vectors, and answers that move them out of
    # their buckets, each beside its twins and the tasks it was nearest to.
    nearest_of = {
        t: m.nearest_task_id
        for t, m in zip(ids, kept.add_and_match(items_of(client, ids, texts, vectors)), strict=True)
    }
    popular = sorted({n for n in nearest_of.values() if n is not None})[:12]
    for edited in popular:
        neighbours = [t for t, n in nearest_of.items() if n == edited][:3]
        twins = [t for t in ids if texts[t][1] == texts[edited][1] and t != edited][:3]
        texts[edited] = (texts[edited][0], ANSWERS[0].format(t=f"billing {edited}"))
        vectors[edited] = unit(rng.standard_normal(DIM))
        both(sorted({edited, *neighbours, *twins}))
    made_afresh.clear()
    everyone = sorted(texts)
    for start in range(0, len(everyone), 45):
        both(everyone[start : start + 45])
    made_afresh.clear()
    for start in range(0, len(everyone), 45):
        both(everyone[start : start + 45])
    assert made_afresh == []  # unchanged since: every match kept, every one still right


def test_a_match_made_while_another_process_wrote_is_not_kept(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process A reads the buckets, process B indexes a twin of A's task, then A writes: A
    could not see the twin, so it keeps nothing, and the next request finds the twin."""
    texts = {
        1: ("How do I reset API keys?", ANSWERS[0].format(t="API keys")),
        2: ("hi! How do I reset API keys?", ANSWERS[0].format(t="API keys")),
    }
    vectors = {1: unit(np.ones(DIM)), 2: unit(np.arange(DIM) + 1.0)}
    first, second = process(client, "project:race"), process(client, "project:race")
    real_nearest = first._nearest

    def meanwhile(items, batch):  # type: ignore[no-untyped-def]
        second.add_and_match(items_of(client, [2], texts, vectors))
        return real_nearest(items, batch)

    monkeypatch.setattr(first, "_nearest", meanwhile)
    [alone] = first.add_and_match(items_of(client, [1], texts, vectors))
    assert alone.duplicate_of == ()  # what A could see
    monkeypatch.undo()
    [again] = first.add_and_match(items_of(client, [1], texts, vectors))
    [reference] = Afresh(client, "project:race-afresh").add_and_match(
        items_of(client, [1, 2], texts, vectors)
    )[:1]
    assert again.duplicate_of == (2,) == reference.duplicate_of
    assert again.nearest_task_id == 2


def test_matches_kept_under_another_threshold_are_not_read(client: redis.Redis) -> None:
    texts = {
        1: ("How do I reset API keys?", ANSWERS[0].format(t="API keys")),
        2: ("Hello, how do I reset API keys? Thanks", ANSWERS[0].format(t="API keys") + " Ok."),
    }
    vectors = {1: unit(np.ones(DIM)), 2: unit(np.arange(DIM) + 1.0)}
    batch = items_of(client, [1, 2], texts, vectors)
    loose = DuplicateIndex(
        client, "project:rules", NearDuplicateRule(0.3), VectorIndex(client, "project:rules")
    )
    strict = DuplicateIndex(
        client, "project:rules", NearDuplicateRule(0.99), VectorIndex(client, "project:rules")
    )
    assert [m.duplicate_of for m in loose.add_and_match(batch)] == [(2,), (1,)]
    assert [m.duplicate_of for m in strict.add_and_match(batch)] == [(), ()]


def test_a_kept_match_brought_up_to_date_beside_an_edit_lists_nobody_as_they_were(
    client: redis.Redis,
) -> None:
    """Tasks 1 and 2 are twins. A batch brings a third twin and task 2 edited away: task 1's
    kept match, brought up to date with the third, must not list task 2 any more."""
    ask, answer = "How do I reset API keys?", ANSWERS[0].format(t="API keys")
    texts = {1: (ask, answer), 2: ("hi! " + ask, answer), 3: (ask + " thanks", answer)}
    rng = np.random.default_rng(11)
    vectors = {t: unit(rng.standard_normal(DIM)) for t in texts}
    kept, afresh = process(client, "project:edit"), Afresh(client, "project:edit-afresh")
    for batch in ([1, 2], [1]):
        same(
            kept.add_and_match(items_of(client, batch, texts, vectors)),
            afresh.add_and_match(items_of(client, batch, texts, vectors)),
        )
    texts[2] = ("Where is the billing page?", ANSWERS[1].format(t="billing"))
    batch = items_of(client, [2, 3], texts, vectors)
    same(kept.add_and_match(batch), afresh.add_and_match(batch))
    [again] = kept.add_and_match(items_of(client, [1], texts, vectors))
    [reference] = afresh.add_and_match(items_of(client, [1], texts, vectors))
    same([again], [reference])
    assert again.duplicate_of == (3,)
