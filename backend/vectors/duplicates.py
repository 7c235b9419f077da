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
from tracetune.backend.vectors.lsh import PAIR, indexed_families, query_family
from tracetune.backend.vectors.matching import DuplicateRule, SignatureTable, score_candidates

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
        return BucketStore(self.client, self._key("lsh", ""))

    @staticmethod
    def _query(item: IndexItem) -> list[str]:
        """The buckets the item finds its candidates in."""
        family = query_family(item.signatures)
        if family is None:
            return []
        return [f"{family.name}:{b}" for b in family.buckets(item.signatures) or ()]

    @staticmethod
    def _memberships(
        task_id: int, signatures: dict[str, np.ndarray | None], families: Sequence[str] = ()
    ) -> Membership:
        """Every bucket a task with these signatures is in (of `families`, when given)."""
        return Membership(
            task_id,
            [
                f"{family.name}:{bucket}"
                for family in indexed_families(signatures)
                if not families or family.name in families
                for bucket in family.buckets(signatures) or ()
            ],
        )

    def add_and_match(self, items: Sequence[IndexItem]) -> list[DuplicateMatch]:
        """Match each item against the project and the batch, then index the batch.

        Items are handled in task-id order, so which task starts a cluster does not depend on
        how Label Studio batched the requests.
        """
        if not items:
            return []
        assert self.rule is not None, "matching needs a DuplicateRule"
        ordered = sorted(items, key=lambda item: item.task_id)
        batch_ids = {item.task_id for item in ordered}
        candidates = self._stored_candidates(ordered)
        stored_signatures = self._stored_signatures(
            {c for proposed in candidates.values() for c in proposed} | batch_ids
        )
        previous = {
            kind: {t: s for t, s in stored.items() if t in batch_ids}
            for kind, stored in stored_signatures.items()
        }
        for task_id, in_batch in self._batch_candidates(ordered, previous).items():
            candidates[task_id] |= in_batch
        for item in ordered:
            for kind, signature in item.signatures.items():
                stored_signatures[kind][item.task_id] = signature
        tables = {k: SignatureTable(stored, NUM_PERM) for k, stored in stored_signatures.items()}
        scored = score_candidates(
            [item.signatures for item in ordered],
            [candidates[item.task_id] for item in ordered],
            tables,
            self.rule,
            MAX_LISTED,
        )
        nearest = self._nearest(ordered)
        wanted = sorted(batch_ids | {t for match in scored for t in match.duplicate_of})
        raw_clusters = cast(list[bytes | None], self.client.hmget(self._key("clusters"), wanted))
        clusters = {t: c.decode() for t, c in zip(wanted, raw_clusters, strict=True) if c}
        unclustered = batch_ids - set(clusters)

        matches: dict[int, DuplicateMatch] = {}
        for item, found, (nearest_id, similarity) in zip(ordered, scored, nearest, strict=True):
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
        self._store(ordered, {t: clusters[t] for t in unclustered}, previous)
        return [matches[item.task_id] for item in items]

    def _nearest(self, items: Sequence[IndexItem]) -> list[tuple[int | None, float]]:
        """Per item, its most similar task by cosine (ties: the lower id) among the indexed
        tasks and the rest of its batch, or (None, 0.0).

        A batch task already indexed (predicted again) is scored with its new vector. Within
        the batch, the `MAX_LISTED + 1` closest are the contenders, as the index proposes
        its `MAX_LISTED + 2` closest.
        """
        matrix = np.stack([item.vector for item in items])
        ids = np.array([item.task_id for item in items], dtype=np.int64)
        hit_ids, hit_scores = self.vectors.search_arrays(matrix, MAX_LISTED + 2)
        hit_scores = np.where(np.isin(hit_ids, ids), -np.inf, hit_scores)
        best_score, best_id = _best(hit_ids, hit_scores)
        if len(ids) > 1:
            within = matrix @ matrix.T
            np.fill_diagonal(within, -np.inf)
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

    def _stored_candidates(self, items: Sequence[IndexItem]) -> dict[int, set[int]]:
        """Every indexed task sharing a bucket of its query family with an item (`lsh.py`),
        in one script call (the union per task made by Redis, members sent as integers)."""
        self._ensure_pair_buckets()
        unions = self._buckets.unions([self._query(item) for item in items])
        return {
            item.task_id: members - {item.task_id}
            for item, members in zip(items, unions, strict=True)
        }

    @staticmethod
    def _batch_candidates(
        items: Sequence[IndexItem], known: dict[str, dict[int, np.ndarray | None]]
    ) -> dict[int, set[int]]:
        """Tasks of the batch sharing a bucket that the stored buckets do not show: an item
        finds the batch's new or changed tasks (`known`: the batch's signatures as stored) in
        the buckets of its query family. A task stored unchanged is in its buckets already, so
        `_stored_candidates` found it; a batch predicted again costs nothing here."""
        fresh: dict[tuple[str, str], list[int]] = defaultdict(list)
        for item in items:
            if not _changed(item, known):
                continue
            for family in indexed_families(item.signatures):
                for bucket in family.buckets(item.signatures) or ():
                    fresh[(family.name, bucket)].append(item.task_id)
        found: dict[int, set[int]] = defaultdict(set)
        if not fresh:
            return found
        for item in items:
            looks_in = query_family(item.signatures)
            if looks_in is None:
                continue
            for bucket in looks_in.buckets(item.signatures) or ():
                found[item.task_id].update(fresh.get((looks_in.name, bucket), ()))
            found[item.task_id].discard(item.task_id)
        return found

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
            additions.append(self._memberships(int(raw_id), sides, families=(PAIR,)))
            if len(additions) >= 1024:
                self._buckets.write((), additions)
                additions = []
        self._buckets.write((), additions)
        self.client.set(marker, PAIR)

    def _stored_signatures(self, task_ids: set[int]) -> dict[str, dict[int, np.ndarray | None]]:
        ordered = sorted(task_ids)
        result: dict[str, dict[int, np.ndarray | None]] = {kind: {} for kind in KINDS}
        if not ordered:
            return result
        pipe = self.client.pipeline(transaction=False)
        for kind in KINDS:
            pipe.hmget(self._key("signatures", kind), ordered)
        for kind, values in zip(KINDS, pipe.execute(), strict=True):
            for task_id, raw in zip(ordered, values, strict=True):
                if raw:
                    result[kind][task_id] = np.frombuffer(raw, dtype=np.uint32)
        return result

    def _store(
        self,
        items: Sequence[IndexItem],
        clusters: dict[int, str],
        known: dict[str, dict[int, np.ndarray | None]],
    ) -> None:
        """Write the batch: LSH buckets in one script call, each hash in one HSET, vectors to
        the vector log. `known` holds the batch's signatures as stored before, `clusters` the
        clusters given now (a cluster once given stays). A task stored unchanged writes
        nothing."""
        removals: list[Membership] = []
        additions: list[Membership] = []
        signatures: dict[str, dict[str, bytes]] = defaultdict(dict)
        pipe = self.client.pipeline(transaction=False)
        changed = [item for item in items if _changed(item, known)]
        for item in changed:
            previous = {kind: known[kind].get(item.task_id) for kind in KINDS}
            removals.append(self._memberships(item.task_id, previous))
            additions.append(self._memberships(item.task_id, item.signatures))
            for kind in KINDS:
                signature = item.signatures.get(kind)
                if signature is not None:
                    signatures[kind][str(item.task_id)] = signature.tobytes()
                elif previous[kind] is not None:  # a side the task no longer has
                    pipe.hdel(self._key("signatures", kind), str(item.task_id))
        self._buckets.write(removals, additions, pipe)
        for kind, mapping in signatures.items():
            pipe.hset(self._key("signatures", kind), mapping=mapping)  # type: ignore[arg-type]
        if clusters:
            given = {str(task_id): cluster for task_id, cluster in clusters.items()}
            pipe.hset(self._key("clusters"), mapping=given)  # type: ignore[arg-type]
        if len(pipe):
            pipe.execute()
        self.vectors.append(
            [item.task_id for item in items], np.stack([item.vector for item in items])
        )

    def drop(self) -> None:
        """Delete this index (ad hoc runs clean up after themselves)."""
        self.vectors.drop()
        for found in self.client.scan_iter(match=self._key("*"), count=1000):
            self.client.delete(found)
