"""Near-duplicates across a whole project: MinHash LSH and embedding similarity, in Redis.

Every task is indexed when it is predicted, by whichever backend process handles it, so a task
predicted today finds its twin predicted last week in another request. One MinHash signature
per side of a task (its user turns, its answer: `KINDS`) goes into LSH bands (16 bands of 8
rows: candidates from Jaccard ~0.7, almost all pairs above 0.8 found); a `DuplicateRule` then
decides from the candidates' estimated Jaccard per side (which texts the sides hold and the
rule itself live in `prediction/near_duplicates.py`). Task vectors give the nearest task by
cosine, shown with every prediction, through the project's `VectorIndex` (an HNSW graph in
each process, kept from a log in Redis, which semantic search reads too), so a request costs
the same at 1,000 and at 100,000 tasks. A task lists its `MAX_LISTED` closest duplicates.

Every task gets a cluster id: its own (`c<task id>`) unless it duplicates a task already
indexed, whose cluster it then joins. A cluster is therefore stable once given: predicting a
task again keeps it, and a later twin joins the earlier task's cluster.
"""

from __future__ import annotations

import hashlib
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
from tracetune.backend.vectors.matching import DuplicateRule, SignatureTable, score_candidates

NUM_PERM = 128
MAX_LISTED = 20
BANDS = 16
ROWS = 8
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


def _band_keys(signature: np.ndarray) -> tuple[str, ...]:
    """One bucket name per band: the band number and a hash of its rows."""
    return _bands_of(signature.tobytes())


@lru_cache(maxsize=16384)
def _bands_of(raw: bytes) -> tuple[str, ...]:
    """Remembered: a batch asks for each signature's bands up to three times."""
    width = ROWS * 4
    rows = [raw[band * width : (band + 1) * width] for band in range(BANDS)]
    return tuple(
        f"{band}:{hashlib.blake2b(part, digest_size=8).hexdigest()}"
        for band, part in enumerate(rows)
    )


#: Adds ARGV[i] to the set KEYS[i], for all i, in one round trip (a batch touches ~32 buckets
#: per task).
_ADD_TO_BUCKETS = """
for i, name in ipairs(KEYS) do
  redis.call('SADD', name, ARGV[i])
end
return #KEYS
"""


#: Per task, the union of its buckets (ARGV[t] of KEYS, in order), members as integers.
_BUCKET_UNIONS = """
local unions, at = {}, 1
for t = 1, #ARGV do
  local count = tonumber(ARGV[t])
  local members = {}
  if count > 0 then
    members = redis.call('SUNION', unpack(KEYS, at, at + count - 1))
    for i, member in ipairs(members) do members[i] = tonumber(member) end
  end
  unions[t] = members
  at = at + count
end
return unions
"""


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

    def _bucket_keys(self, kind: str, signature: np.ndarray) -> list[str]:
        prefix = self._key("lsh", kind, "")
        return [prefix + band for band in _band_keys(signature)]

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
        self._store(ordered, clusters, previous)
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
        in_batch = set(ids.tolist())
        within = matrix @ matrix.T
        np.fill_diagonal(within, -np.inf)
        keep = min(MAX_LISTED + 1, len(ids) - 1)
        closest = np.argpartition(-within, keep - 1, axis=1)[:, :keep] if keep > 0 else None
        found: list[tuple[int | None, float]] = []
        for row, hits in enumerate(self.vectors.search(matrix, MAX_LISTED + 2)):
            best: tuple[float, int] | None = None
            for other, score in hits:  # most similar first
                if other in in_batch:
                    continue
                if best is not None and score < -best[0]:
                    break
                if best is None or (-score, other) < best:
                    best = (-score, other)
            if closest is not None:
                scores = within[row, closest[row]]
                top = float(scores.max())
                other = int(ids[closest[row][scores == scores.max()]].min())
                if best is None or (-top, other) < best:
                    best = (-top, other)
            found.append((None, 0.0) if best is None else (best[1], -best[0]))
        return found

    def _stored_candidates(self, items: Sequence[IndexItem]) -> dict[int, set[int]]:
        """Every indexed task sharing an LSH bucket with an item, on any side, in one script
        call (the union per task made by Redis, its members sent back as integers)."""
        bucket_keys: list[str] = []
        per_task: list[int] = []
        for item in items:
            keys = [
                k
                for kind, signature in item.signatures.items()
                if signature is not None
                for k in self._bucket_keys(kind, signature)
            ]
            bucket_keys += keys
            per_task.append(len(keys))
        found: dict[int, set[int]] = defaultdict(set)
        if not bucket_keys:
            return found
        unions = self.client.eval(_BUCKET_UNIONS, len(bucket_keys), *bucket_keys, *per_task)
        for item, members in zip(items, cast(list[list[int]], unions), strict=True):
            found[item.task_id].update(members)
            found[item.task_id].discard(item.task_id)
        return found

    @staticmethod
    def _batch_candidates(
        items: Sequence[IndexItem], known: dict[str, dict[int, np.ndarray | None]]
    ) -> dict[int, set[int]]:
        """Tasks of the batch sharing a bucket that the stored buckets do not show: pairs
        where one side is new or changed (`known`: the batch's signatures as stored). A side
        stored unchanged is in its buckets already, so `_stored_candidates` found it; a batch
        predicted again costs nothing here."""
        members: dict[tuple[str, str], list[int]] = defaultdict(list)
        fresh: dict[tuple[str, str], list[int]] = defaultdict(list)
        for item in items:
            for kind, signature in item.signatures.items():
                if signature is None:
                    continue
                previous = known[kind].get(item.task_id)
                changed = previous is None or not np.array_equal(previous, signature)
                for band in _band_keys(signature):
                    members[(kind, band)].append(item.task_id)
                    if changed:
                        fresh[(kind, band)].append(item.task_id)
        found: dict[int, set[int]] = defaultdict(set)
        for bucket, new in fresh.items():
            sharing = members[bucket]
            if len(sharing) > 1:  # most buckets hold one task of the batch
                for task_id in sharing:
                    found[task_id].update(new)
                for task_id in new:
                    found[task_id].update(sharing)
        for task_id, others in found.items():
            others.discard(task_id)
        return found

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
        the vector log; `known` holds the batch's signatures as stored before."""
        bucket_keys: list[str] = []
        bucket_ids: list[int] = []
        signatures: dict[str, dict[str, bytes]] = defaultdict(dict)
        pipe = self.client.pipeline(transaction=False)
        for item in items:
            for kind, signature in item.signatures.items():
                previous = known[kind].get(item.task_id)
                if signature is None or (
                    previous is not None and np.array_equal(previous, signature)
                ):
                    continue
                if previous is not None:
                    for bucket in self._bucket_keys(kind, previous):
                        pipe.srem(bucket, item.task_id)
                for bucket in self._bucket_keys(kind, signature):
                    bucket_keys.append(bucket)
                    bucket_ids.append(item.task_id)
                signatures[kind][str(item.task_id)] = signature.tobytes()
        if bucket_keys:
            pipe.eval(_ADD_TO_BUCKETS, len(bucket_keys), *bucket_keys, *bucket_ids)
        for kind, mapping in signatures.items():
            pipe.hset(self._key("signatures", kind), mapping=mapping)  # type: ignore[arg-type]
        ids = {str(item.task_id): clusters[item.task_id] for item in items}
        pipe.hset(self._key("clusters"), mapping=ids)  # type: ignore[arg-type]
        pipe.execute()
        self.vectors.append(
            [item.task_id for item in items], np.stack([item.vector for item in items])
        )

    def drop(self) -> None:
        """Delete this index (ad hoc runs clean up after themselves)."""
        self.vectors.drop()
        for found in self.client.scan_iter(match=self._key("*"), count=1000):
            self.client.delete(found)
