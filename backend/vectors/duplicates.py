"""Near-duplicates across a whole project: MinHash LSH and embedding similarity, in Redis.

Every task is indexed when it is predicted, by whichever backend process handles it, so a task
predicted today finds its twin predicted last week in another request. One MinHash signature
per side of a task (its user turns, its answer: `KINDS`) goes into LSH buckets; a task finds
its candidates in buckets that hash both sides together, so only tasks alike on both sides
are compared (`lsh.py`). A `DuplicateRule` then decides from the candidates' estimated
Jaccard per side (which texts the sides hold and the rule itself live in
`prediction/near_duplicates.py`). Task vectors give the nearest task by
cosine, shown with every prediction, through the project's `VectorIndex` (an HNSW graph in
each process, kept from a log in Redis, which semantic search reads too), so a request costs
the same at 1,000 and at 100,000 tasks. A task lists its `MAX_LISTED` closest duplicates.
A task predicted again, unchanged, reads its kept match instead of being matched again
(`kept_matches.py` says when that is right).

Every task gets a cluster id: its own (`c<task id>`) unless it duplicates a task already
indexed, whose cluster it then joins. A cluster is therefore stable once given: predicting a
task again keeps it, and a later twin joins the earlier task's cluster.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import numpy as np
import redis
from datasketch import MinHash

from tracetune.backend.cache import BatchRead, key
from tracetune.backend.vectors.ann import VectorIndex
from tracetune.backend.vectors.buckets import BucketStore, Membership
from tracetune.backend.vectors.kept_matches import KeptMatch, score_of
from tracetune.backend.vectors.lsh import FAMILIES, PAIR, indexed_families, query_family
from tracetune.backend.vectors.matching import (
    Comparisons,
    DuplicateRule,
    Scored,
    SignatureTable,
    score_candidates,
)

NUM_PERM = 128
MAX_LISTED = 20
SHINGLE_WORDS = 3
KINDS = ("user", "answer")
_WORD = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _template() -> MinHash:
    return MinHash(num_perm=NUM_PERM, seed=1)


def shingles(text: str) -> set[bytes]:
    """Word 3-grams of the lower-cased words (the words joined, for shorter texts)."""
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words).encode()} if words else set()
    return {
        " ".join(words[i : i + SHINGLE_WORDS]).encode()
        for i in range(len(words) - SHINGLE_WORDS + 1)
    }


Shingler = Callable[[str], set[bytes]]


def minhash(text: str, shingle: Shingler = shingles) -> np.ndarray | None:
    """The text's signature, or None for a text without words."""
    grams = shingle(text)
    if not grams:
        return None
    template = _template()
    sketch = MinHash(num_perm=NUM_PERM, permutations=template.permutations, scheme=template.scheme)
    sketch.update_batch(list(grams))
    return np.asarray(sketch.hashvalues, dtype=np.uint32)


def signature_key(text_hash: str, scheme: str) -> str:
    """The cache key of a text's signature under a shingling scheme."""
    return key("minhash", NUM_PERM, scheme, text_hash)


def signatures(
    client: redis.Redis,
    texts: Sequence[str],
    shingle: Shingler = shingles,
    scheme: str = "w3",
    reads: BatchRead | None = None,
) -> list[np.ndarray | None]:
    """Signatures of `texts` under one shingling `scheme` (its name is part of the cache key),
    cached in Redis by content hash (an empty bytes value: no words). `reads`: the batch's
    reads, when it prefetched them."""
    reads = reads or BatchRead(client)
    hashes = [reads.hash(t) for t in texts]
    unique = list(dict.fromkeys(hashes))
    keys = [signature_key(h, scheme) for h in unique]
    stored = reads.get(keys) if keys else []
    found: dict[str, np.ndarray | None] = {}
    for h, raw in zip(unique, stored, strict=True):
        if raw is not None:
            found[h] = np.frombuffer(cast(bytes, raw), dtype=np.uint32) if raw else None
    missing = [h for h in unique if h not in found]
    if missing:
        text_of = dict(zip(hashes, texts, strict=True))
        computed = {h: minhash(text_of[h], shingle) for h in missing}
        found.update(computed)
        client.mset(
            {
                key("minhash", NUM_PERM, scheme, h): b"" if value is None else value.tobytes()
                for h, value in computed.items()
            }
        )
    return [found[h] for h in hashes]


def _best(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the highest score and its task id (ties: the lower id); -inf without any."""
    if not ids.shape[1]:
        return np.full(len(ids), -np.inf), np.full(len(ids), np.iinfo(np.int64).max)
    top = scores.max(axis=1)
    tied = np.where(scores == top[:, np.newaxis], ids, np.iinfo(np.int64).max)
    return top.astype(np.float64), tied.min(axis=1)


def _changed(item: IndexItem, known: dict[str, dict[int, np.ndarray | None]]) -> bool:
    """Whether any side of the item differs from its stored signature (or is new)."""
    for kind in KINDS:
        stored, now = known[kind].get(item.task_id), item.signatures.get(kind)
        if (stored is None) != (now is None) or (
            stored is not None and now is not None and not np.array_equal(stored, now)
        ):
            return True
    return False


def _indexed_buckets(signatures: dict[str, np.ndarray | None]) -> list[tuple[str, str]]:
    """(family, bucket) of every bucket a task with these signatures is in."""
    return [
        (family.name, bucket)
        for family in indexed_families(signatures)
        for bucket in family.buckets(signatures) or ()
    ]


def _keeps_match(item: IndexItem) -> bool:
    """Whether the item's match is kept: it has both sides, so it looks in `pair` buckets
    alone (`kept_matches.py`)."""
    return query_family(item.signatures) is FAMILIES[PAIR]


def _finders(
    items: Sequence[IndexItem], placed: dict[tuple[str, str], list[int]]
) -> dict[int, set[int]]:
    """Per item, the other tasks `placed` in a bucket it looks in."""
    found: dict[int, set[int]] = defaultdict(set)
    if not placed:
        return found
    for item in items:
        looks_in = query_family(item.signatures)
        if looks_in is None:
            continue
        for bucket in looks_in.buckets(item.signatures) or ():
            found[item.task_id].update(placed.get((looks_in.name, bucket), ()))
        found[item.task_id].discard(item.task_id)
    return found


@dataclass
class IndexItem:
    """One task to index: its signatures per kind and its vector."""

    task_id: int
    signatures: dict[str, np.ndarray | None]
    vector: np.ndarray


@dataclass(frozen=True)
class DuplicateMatch:
    cluster_id: str
    is_duplicate: bool
    score: float
    nearest_task_id: int | None
    nearest_similarity: float
    duplicate_of: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id,
            "is_duplicate": self.is_duplicate,
            "score": round(self.score, 4),
            "nearest_task_id": self.nearest_task_id,
            "nearest_similarity": round(self.nearest_similarity, 4),
            "duplicate_of": list(self.duplicate_of),
        }


@dataclass(frozen=True)
class BatchState:
    """What the index held for a batch's tasks when it came: their signatures per kind (and
    which tasks are new or edited), kept matches, clusters and the tasks whose vector is
    indexed unchanged; and, per task, the batch's new or edited tasks in its buckets
    (`in_batch`), and the tasks sharing a bucket an edited task leaves (`left_behind`)."""

    previous: dict[str, dict[int, np.ndarray | None]]
    changed: set[int]
    kept: dict[int, KeptMatch]
    clusters: dict[int, str]
    in_batch: dict[int, set[int]]
    left_behind: set[int]
    vector_kept: set[int]

    def was_indexed(self, task_id: int) -> bool:
        """Whether the task had a stored side before this batch (an edit, not a new task)."""
        return any(task_id in stored for stored in self.previous.values())


@dataclass(frozen=True)
class Made:
    """What matching afresh found: per task its scored candidates and nearest task, the
    clusters of the duplicates it listed, the matches to keep (its own and those it brought
    up to date), and the write counter the buckets were read at."""

    scored: dict[int, Scored]
    nearest: dict[int, tuple[int | None, float]]
    clusters: dict[int, str]
    kept: dict[int, KeptMatch]
    read_at: int


class DuplicateIndex:
    """The near-duplicate index of one project (or one ad hoc run) in Redis.

    `rule` is needed to match; dropping the index works without one. `vectors` is the
    process's index of the scope's task vectors (one per scope is kept by `VectorIndexes`).
    """

    def __init__(
        self,
        client: redis.Redis,
        scope: str,
        rule: DuplicateRule | None = None,
        vectors: VectorIndex | None = None,
    ) -> None:
        self.client = client
        self.scope = scope
        self.rule = rule
        self.vectors = vectors if vectors is not None else VectorIndex(client, scope)

    def _key(self, *parts: str | int) -> str:
        return key("index", self.scope, *parts)

    @property
    def _buckets(self) -> BucketStore:
        return BucketStore(
            self.client,
            self._key("lsh", ""),
            counter=self._key("lsh_writes"),
            matches=self._key("matches"),
            watched=f"{PAIR}:",
        )

    @staticmethod
    def _query(item: IndexItem) -> list[str]:
        """The buckets the item finds its candidates in."""
        family = query_family(item.signatures)
        if family is None:
            return []
        return [f"{family.name}:{b}" for b in family.buckets(item.signatures) or ()]

    @staticmethod
    def _memberships(
        task_id: int,
        signatures: dict[str, np.ndarray | None],
        families: Sequence[str] = (),
        forgets: bool = False,
    ) -> Membership:
        """Every bucket a task with these signatures is in (of `families`, when given)."""
        return Membership(
            task_id,
            [
                f"{family}:{bucket}"
                for family, bucket in _indexed_buckets(signatures)
                if not families or family in families
            ],
            forgets,
        )

    def add_and_match(self, items: Sequence[IndexItem]) -> list[DuplicateMatch]:
        """Match each item against the project and the batch, then index the batch.

        Items are handled in task-id order, so which task starts a cluster does not depend on
        how Label Studio batched the requests. A task whose kept match is still good
        (`kept_matches.py`) is not matched again.
        """
        if not items:
            return []
        assert self.rule is not None, "matching needs a DuplicateRule"
        ordered = sorted(items, key=lambda item: item.task_id)
        self._ensure_pair_buckets()
        state = self._batch_state(ordered)
        matches = self._reused(ordered, state)
        fresh = [item for item in ordered if item.task_id not in matches]
        made = self._match(fresh, ordered, state) if fresh else None
        clusters = dict(state.clusters)
        if made is not None:
            clusters.update(made.clusters)
        unclustered = {item.task_id for item in ordered} - set(clusters)
        for item in fresh:
            assert made is not None
            found, (nearest_id, similarity) = made.scored[item.task_id], made.nearest[item.task_id]
            cluster = clusters.get(item.task_id)
            if cluster is None:
                owners = [t for t in found.duplicate_of if clusters.get(t)]
                cluster = clusters[owners[0]] if owners else f"c{item.task_id}"
                clusters[item.task_id] = cluster
            matches[item.task_id] = DuplicateMatch(
                cluster_id=cluster,
                is_duplicate=bool(found.duplicate_of),
                score=found.score,
                nearest_task_id=nearest_id,
                nearest_similarity=similarity,
                duplicate_of=found.duplicate_of,
            )
        self._store(ordered, {t: clusters[t] for t in unclustered}, state, made)
        return [matches[item.task_id] for item in items]

    def _batch_state(self, ordered: Sequence[IndexItem]) -> BatchState:
        """What the index holds for the batch's tasks, in one round trip."""
        ids = [item.task_id for item in ordered]
        pipe = self.client.pipeline(transaction=False)
        for kind in KINDS:
            pipe.hmget(self._key("signatures", kind), ids)
        pipe.hmget(self._key("matches"), ids)
        pipe.hmget(self._key("clusters"), ids)
        *per_kind, raw_kept, raw_clusters = pipe.execute()
        previous: dict[str, dict[int, np.ndarray | None]] = {
            kind: {
                t: np.frombuffer(raw, dtype=np.uint32)
                for t, raw in zip(ids, values, strict=True)
                if raw
            }
            for kind, values in zip(KINDS, per_kind, strict=True)
        }
        same = self.vectors.unchanged(ids, np.stack([item.vector for item in ordered]))
        changed = {item.task_id for item in ordered if _changed(item, previous)}
        return BatchState(
            previous=previous,
            changed=changed,
            kept={
                t: kept
                for t, raw in zip(ids, raw_kept, strict=True)
                if raw and (kept := self._kept_match(raw)) is not None
            },
            clusters={t: c.decode() for t, c in zip(ids, raw_clusters, strict=True) if c},
            in_batch=self._batch_candidates(ordered, changed),
            left_behind=self._left_behind(ordered, previous, changed),
            vector_kept={t for t, kept in zip(ids, same, strict=True) if kept},
        )

    def _kept_match(self, raw: bytes) -> KeptMatch | None:
        """A kept match as stored, or None when made under another rule (another threshold's
        are stale)."""
        assert self.rule is not None
        kept = KeptMatch.decode(raw)
        return kept if kept.rule == self.rule.key else None

    def _reused(self, ordered: Sequence[IndexItem], state: BatchState) -> dict[int, DuplicateMatch]:
        """The batch's tasks whose kept match still holds, brought up to date with the vectors
        written since its search. A task holds its match when it is indexed unchanged (both
        sides, same vector) and no new or edited task of the batch shares a bucket with it;
        its nearest task is then the closer of the kept one and the tasks written since."""
        reusable = [
            item
            for item in ordered
            if item.task_id in state.kept
            and item.task_id in state.clusters
            and item.task_id in state.vector_kept
            and _keeps_match(item)
            and item.task_id not in state.changed
            and not state.in_batch.get(item.task_id)
            and item.task_id not in state.left_behind
        ]
        if not reusable:
            return {}
        moving = [item for item in ordered if item.task_id not in state.vector_kept]
        by_position: dict[str, list[IndexItem]] = defaultdict(list)
        for item in reusable:
            by_position[state.kept[item.task_id].position].append(item)
        reused: dict[int, DuplicateMatch] = {}
        for position, group in by_position.items():
            written = self.vectors.ids_since(position)
            if written is None:
                continue
            best_score, best_id = self._closest_since(group, written.ids, moving)
            unsure = written.rewritten | {item.task_id for item in moving}
            found = zip(group, best_score.tolist(), best_id.tolist(), strict=True)
            for item, score, task_id in found:
                kept = state.kept[item.task_id]
                if kept.nearest_task_id in unsure:
                    continue  # its nearest task moved: search again
                nearest, similarity = kept.nearest_task_id, kept.nearest_similarity
                if not np.isneginf(score) and (
                    nearest is None
                    or score > similarity
                    or (score == similarity and task_id < nearest)
                ):
                    nearest, similarity = int(task_id), float(score)
                reused[item.task_id] = DuplicateMatch(
                    cluster_id=state.clusters[item.task_id],
                    is_duplicate=bool(kept.duplicates),
                    score=kept.score,
                    nearest_task_id=nearest,
                    nearest_similarity=similarity,
                    duplicate_of=tuple(t for t, _ in kept.duplicates),
                )
        return reused

    def _closest_since(
        self, group: Sequence[IndexItem], written: np.ndarray, moving: Sequence[IndexItem]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per item of `group`, its most similar task (score, id; -inf without any) among the
        tasks `written` since and the batch's `moving` tasks (new or re-embedded: scored with
        their new vectors)."""
        moving_ids = np.array([item.task_id for item in moving], dtype=np.int64)
        since = written[~np.isin(written, moving_ids)]
        contenders = np.concatenate([since, moving_ids])
        matrix = np.concatenate(
            [self.vectors.matrix_of(since), *(item.vector[np.newaxis] for item in moving)]
        ) if len(contenders) else np.zeros((0, len(group[0].vector)), np.float32)  # fmt: skip
        scores = np.stack([item.vector for item in group]) @ matrix.T
        own = np.array([item.task_id for item in group], dtype=np.int64)
        scores = np.where(contenders[np.newaxis, :] == own[:, np.newaxis], -np.inf, scores)
        return _best(np.broadcast_to(contenders, scores.shape), scores)

    def _match(
        self, fresh: Sequence[IndexItem], ordered: Sequence[IndexItem], state: BatchState
    ) -> Made:
        """Match `fresh` (of the batch `ordered`) against the project and the batch; bring up
        to date the kept matches of the project's tasks that a new task was compared with."""
        assert self.rule is not None
        batch_ids = {item.task_id for item in ordered}
        position = self.vectors.position()  # before searching: a later write is looked at again
        unions = self._buckets.unions([self._query(item) for item in fresh])
        candidates = {
            item.task_id: (members - {item.task_id}) | state.in_batch.get(item.task_id, set())
            for item, members in zip(fresh, unions.members, strict=True)
        }
        outside = sorted({c for proposed in candidates.values() for c in proposed} - batch_ids)
        stored_signatures, kept_outside = self._stored_signatures(outside)
        for item in ordered:
            for kind, signature in item.signatures.items():
                stored_signatures[kind][item.task_id] = signature
        tables = {k: SignatureTable(stored, NUM_PERM) for k, stored in stored_signatures.items()}
        scored, compared = score_candidates(
            [item.signatures for item in fresh],
            [candidates[item.task_id] for item in fresh],
            tables,
            self.rule,
            MAX_LISTED,
        )
        nearest = self._nearest(fresh, ordered)
        listed = sorted({t for match in scored for t in match.duplicate_of} - batch_ids)
        raw_clusters = (
            cast(list[bytes | None], self.client.hmget(self._key("clusters"), listed))
            if listed
            else []
        )
        kept = {
            item.task_id: KeptMatch(
                self.rule.key,
                position,
                found.score,
                nearest_id,
                similarity,
                tuple(zip(found.duplicate_of, found.closeness, strict=True)),
            )
            for item, found, (nearest_id, similarity) in zip(fresh, scored, nearest, strict=True)
            if _keeps_match(item)
        }
        new = [
            position_in_batch
            for position_in_batch, item in enumerate(fresh)
            if _keeps_match(item) and not state.was_indexed(item.task_id)
        ]
        kept.update(self._brought_up_to_date(fresh, new, compared, kept_outside))
        return Made(
            scored={item.task_id: found for item, found in zip(fresh, scored, strict=True)},
            nearest={item.task_id: found for item, found in zip(fresh, nearest, strict=True)},
            clusters={t: c.decode() for t, c in zip(listed, raw_clusters, strict=True) if c},
            kept=kept,
            read_at=unions.read_at,
        )

    def _brought_up_to_date(
        self,
        fresh: Sequence[IndexItem],
        new: Sequence[int],
        compared: Comparisons,
        kept: dict[int, bytes],
    ) -> dict[int, KeptMatch]:
        """The kept matches of project tasks (`kept`: as stored) once the batch's new tasks
        (positions in `fresh`) are among their candidates, where that changes them: a new
        task confirmed as a duplicate, or closer than the match's score."""
        if not kept or not new:
            return {}
        owners = np.fromiter(kept, np.int64, len(kept))
        scores = np.array([score_of(kept[int(t)]) for t in owners])
        order = np.argsort(owners)
        at = np.minimum(np.searchsorted(owners[order], compared.other), len(owners) - 1)
        known = owners[order][at] == compared.other
        closer = compared.closeness > np.where(known, scores[order][at], np.inf)
        relevant = np.isin(compared.task, new) & known & (compared.confirmed | closer)
        updated: dict[int, KeptMatch] = {}
        for pair in np.flatnonzero(relevant):
            other = int(compared.other[pair])
            current = updated.get(other) or self._kept_match(kept[other])
            if current is None:
                continue  # kept under another rule: stale whatever comes
            brought = current.with_candidate(
                fresh[int(compared.task[pair])].task_id,
                float(compared.closeness[pair]),
                bool(compared.confirmed[pair]),
                MAX_LISTED,
            )
            if brought is not None:
                updated[other] = brought
        return updated

    def _nearest(
        self, items: Sequence[IndexItem], batch: Sequence[IndexItem]
    ) -> list[tuple[int | None, float]]:
        """Per item, its most similar task by cosine (ties: the lower id) among the indexed
        tasks and the rest of its `batch`, or (None, 0.0).

        A batch task already indexed (predicted again) is scored with its new vector. Within
        the batch, the `MAX_LISTED + 1` closest are the contenders, as the index proposes
        its `MAX_LISTED + 2` closest.
        """
        queries = np.stack([item.vector for item in items])
        own = np.array([item.task_id for item in items], dtype=np.int64)
        matrix = np.stack([item.vector for item in batch])
        ids = np.array([item.task_id for item in batch], dtype=np.int64)
        hit_ids, hit_scores = self.vectors.search_arrays(queries, MAX_LISTED + 2)
        hit_scores = np.where(np.isin(hit_ids, ids), -np.inf, hit_scores)
        best_score, best_id = _best(hit_ids, hit_scores)
        if len(ids) > 1:
            within = queries @ matrix.T
            within = np.where(ids[np.newaxis, :] == own[:, np.newaxis], -np.inf, within)
            keep = min(MAX_LISTED + 1, len(ids) - 1)
            closest = np.argpartition(-within, keep - 1, axis=1)[:, :keep]
            batch_score, batch_id = _best(ids[closest], np.take_along_axis(within, closest, 1))
            closer = (batch_score > best_score) | (
                (batch_score == best_score) & (batch_id < best_id)
            )
            best_score = np.where(closer, batch_score, best_score)
            best_id = np.where(closer, batch_id, best_id)
        return [
            (None, 0.0) if np.isneginf(score) else (int(task_id), float(score))
            for task_id, score in zip(best_id.tolist(), best_score.tolist(), strict=True)
        ]

    @staticmethod
    def _batch_candidates(items: Sequence[IndexItem], changed: set[int]) -> dict[int, set[int]]:
        """Tasks of the batch sharing a bucket that the stored buckets do not show: an item
        finds the batch's new or `changed` tasks in the buckets of its query family. A task
        stored unchanged is in its buckets already, so the stored buckets' union finds it; a
        batch predicted again costs nothing here."""
        placed: dict[tuple[str, str], list[int]] = defaultdict(list)
        for item in items:
            if item.task_id in changed:
                for bucket in _indexed_buckets(item.signatures):
                    placed[bucket].append(item.task_id)
        return _finders(items, placed)

    @staticmethod
    def _left_behind(
        items: Sequence[IndexItem],
        known: dict[str, dict[int, np.ndarray | None]],
        changed: set[int],
    ) -> set[int]:
        """Tasks of the batch looking in a bucket that an edited task of the batch leaves:
        a match kept before may list the task as it was."""
        placed: dict[tuple[str, str], list[int]] = defaultdict(list)
        for item in items:
            if item.task_id in changed:
                before = {kind: known[kind].get(item.task_id) for kind in KINDS}
                for bucket in _indexed_buckets(before):
                    placed[bucket].append(item.task_id)
        return {task_id for task_id, found in _finders(items, placed).items() if found}

    def _ensure_pair_buckets(self) -> None:
        """Index tasks stored before the `pair` family existed into it, once per scope (a
        marker says it was done; reading it is one GET a batch): their signatures are
        stored, so their buckets are rebuilt from them, and a task indexed then is found by a
        twin predicted now."""
        marker = self._key("lsh_families")
        if self.client.get(marker) == PAIR.encode():
            return
        stored = {
            kind: dict(self.client.hscan_iter(self._key("signatures", kind), count=1000))
            for kind in KINDS
        }
        additions: list[Membership] = []
        for raw_id, raw_user in stored["user"].items():
            raw_answer = stored["answer"].get(raw_id)
            if not raw_user or not raw_answer:
                continue
            sides: dict[str, np.ndarray | None] = {
                "user": np.frombuffer(raw_user, dtype=np.uint32),
                "answer": np.frombuffer(raw_answer, dtype=np.uint32),
            }
            additions.append(self._memberships(int(raw_id), sides, families=(PAIR,), forgets=True))
            if len(additions) >= 1024:
                self._buckets.write((), additions)
                additions = []
        self._buckets.write((), additions)
        self.client.set(marker, PAIR)

    def _stored_signatures(
        self, task_ids: Sequence[int]
    ) -> tuple[dict[str, dict[int, np.ndarray | None]], dict[int, bytes]]:
        """The stored signatures per kind of `task_ids` (sorted), and their kept matches as
        stored."""
        result: dict[str, dict[int, np.ndarray | None]] = {kind: {} for kind in KINDS}
        if not task_ids:
            return result, {}
        pipe = self.client.pipeline(transaction=False)
        for kind in KINDS:
            pipe.hmget(self._key("signatures", kind), task_ids)
        pipe.hmget(self._key("matches"), task_ids)
        *per_kind, raw_kept = pipe.execute()
        for kind, values in zip(KINDS, per_kind, strict=True):
            for task_id, raw in zip(task_ids, values, strict=True):
                if raw:
                    result[kind][task_id] = np.frombuffer(raw, dtype=np.uint32)
        return result, {t: raw for t, raw in zip(task_ids, raw_kept, strict=True) if raw}

    def _store(
        self,
        items: Sequence[IndexItem],
        clusters: dict[int, str],
        state: BatchState,
        made: Made | None,
    ) -> None:
        """Write the batch: LSH buckets and kept matches in one script call, each hash in one
        HSET, vectors to the vector log. `state`: what the index held for the batch before,
        `clusters` the clusters given now (a cluster once given stays), `made` what was
        matched afresh. A task stored unchanged writes nothing."""
        known = state.previous
        removals: list[Membership] = []
        additions: list[Membership] = []
        signatures: dict[str, dict[str, bytes]] = defaultdict(dict)
        pipe = self.client.pipeline(transaction=False)
        for item in (item for item in items if item.task_id in state.changed):
            previous = {kind: known[kind].get(item.task_id) for kind in KINDS}
            removals.append(self._memberships(item.task_id, previous))
            additions.append(
                self._memberships(
                    item.task_id, item.signatures, forgets=state.was_indexed(item.task_id)
                )
            )
            for kind in KINDS:
                signature = item.signatures.get(kind)
                if signature is not None:
                    signatures[kind][str(item.task_id)] = signature.tobytes()
                elif previous[kind] is not None:  # a side the task no longer has
                    pipe.hdel(self._key("signatures", kind), str(item.task_id))
        if made is not None:
            kept = {task_id: match.encode() for task_id, match in made.kept.items()}
            self._buckets.write(removals, additions, kept, made.read_at, pipe)
        else:
            self._buckets.write(removals, additions, pipe=pipe)
        for kind, mapping in signatures.items():
            pipe.hset(self._key("signatures", kind), mapping=mapping)  # type: ignore[arg-type]
        if clusters:
            given = {str(task_id): cluster for task_id, cluster in clusters.items()}
            pipe.hset(self._key("clusters"), mapping=given)  # type: ignore[arg-type]
        if len(pipe):
            pipe.execute()
        moved = [item for item in items if item.task_id not in state.vector_kept]
        if moved:
            self.vectors.append(
                [item.task_id for item in moved], np.stack([item.vector for item in moved])
            )

    def drop(self) -> None:
        """Delete this index (ad hoc runs clean up after themselves)."""
        self.vectors.drop()
        for found in self.client.scan_iter(match=self._key("*"), count=1000):
            self.client.delete(found)
