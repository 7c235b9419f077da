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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Protocol, cast

import numpy as np
import redis
from datasketch import MinHash

from tracetune.backend.cache import content_hash, key
from tracetune.backend.vectors.ann import VectorIndex

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


def signatures(
    client: redis.Redis, texts: Sequence[str], shingle: Shingler = shingles, scheme: str = "w3"
) -> list[np.ndarray | None]:
    """Signatures of `texts` under one shingling `scheme` (its name is part of the cache key),
    cached in Redis by content hash (an empty bytes value: no words)."""
    hashes = [content_hash(t) for t in texts]
    unique = list(dict.fromkeys(hashes))
    keys = [key("minhash", NUM_PERM, scheme, h) for h in unique]
    stored = client.mget(keys) if keys else []
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


class DuplicateRule(Protocol):
    """Decides from a candidate's estimated Jaccard similarity per side (the sides the task
    has; a side the candidate lacks counts 0) whether the task duplicates it."""

    def confirms(self, similarities: Mapping[str, float]) -> bool: ...


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

    def add_and_match(self, items: Sequence[IndexItem]) -> list[DuplicateMatch]:
        """Match each item against the project and the batch, then index the batch.

        Items are handled in task-id order, so which task starts a cluster does not depend on
        how Label Studio batched the requests.
        """
        if not items:
            return []
        ordered = sorted(items, key=lambda item: item.task_id)
        batch_ids = {item.task_id for item in ordered}
        candidates = self._stored_candidates(ordered)
        in_batch = self._batch_candidates(ordered)
        for task_id, found in in_batch.items():
            candidates[task_id] |= found
        stored_signatures = self._stored_signatures(
            {c for found in candidates.values() for c in found} | batch_ids
        )
        previous = {
            kind: {t: s for t, s in stored.items() if t in batch_ids}
            for kind, stored in stored_signatures.items()
        }
        for item in ordered:
            for kind, signature in item.signatures.items():
                stored_signatures[kind][item.task_id] = signature
        similar = self._similar(ordered)
        matched = {
            item.task_id: self._match(item, candidates[item.task_id], stored_signatures, similar[i])
            for i, item in enumerate(ordered)
        }
        wanted = sorted(batch_ids | {t for m in matched.values() for t in m.duplicate_of})
        raw_clusters = cast(list[bytes | None], self.client.hmget(self._key("clusters"), wanted))
        clusters = {t: c.decode() for t, c in zip(wanted, raw_clusters, strict=True) if c}

        matches: dict[int, DuplicateMatch] = {}
        for item in ordered:
            match = matched[item.task_id]
            cluster = clusters.get(item.task_id)
            if cluster is None:
                owners = [t for t in match.duplicate_of if clusters.get(t)]
                cluster = clusters[owners[0]] if owners else f"c{item.task_id}"
                clusters[item.task_id] = cluster
            matches[item.task_id] = replace(match, cluster_id=cluster)
        self._store(ordered, clusters, previous)
        return [matches[item.task_id] for item in items]

    def _similar(self, items: Sequence[IndexItem]) -> list[dict[int, float]]:
        """Per item, the cosine of its nearest indexed tasks and of the rest of its batch.

        A batch task already indexed (predicted again) is scored with its new vector.
        """
        matrix = np.stack([item.vector for item in items])
        ids = [item.task_id for item in items]
        in_batch = set(ids)
        within = matrix @ matrix.T
        np.fill_diagonal(within, -np.inf)
        keep = min(MAX_LISTED + 1, len(ids) - 1)
        closest = np.argpartition(-within, keep - 1, axis=1)[:, :keep] if keep > 0 else None
        found = []
        for row, hits in enumerate(self.vectors.search(matrix, MAX_LISTED + 2)):
            scores = {other: score for other, score in hits if other not in in_batch}
            if closest is not None:
                scores.update({ids[col]: float(within[row, col]) for col in closest[row]})
            found.append(scores)
        return found

    def _stored_candidates(self, items: Sequence[IndexItem]) -> dict[int, set[int]]:
        pipe = self.client.pipeline(transaction=False)
        asked: list[int] = []
        for item in items:
            for kind, signature in item.signatures.items():
                if signature is not None:
                    pipe.sunion([self._key("lsh", kind, band) for band in _band_keys(signature)])
                    asked.append(item.task_id)
        found: dict[int, set[int]] = defaultdict(set)
        for task_id, members in zip(asked, pipe.execute(), strict=True):
            found[task_id].update(int(m) for m in members)
            found[task_id].discard(task_id)
        return found

    @staticmethod
    def _batch_candidates(items: Sequence[IndexItem]) -> dict[int, set[int]]:
        buckets: dict[tuple[str, str], set[int]] = defaultdict(set)
        for item in items:
            for kind, signature in item.signatures.items():
                if signature is not None:
                    for band in _band_keys(signature):
                        buckets[(kind, band)].add(item.task_id)
        found: dict[int, set[int]] = defaultdict(set)
        for members in buckets.values():
            if len(members) > 1:  # most buckets hold one task of the batch
                for task_id in members:
                    found[task_id] |= members - {task_id}
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

    def _match(
        self,
        item: IndexItem,
        candidates: set[int],
        signatures: dict[str, dict[int, np.ndarray | None]],
        similar: dict[int, float],
    ) -> DuplicateMatch:
        assert self.rule is not None, "matching needs a DuplicateRule"
        sides = {kind: s for kind, s in item.signatures.items() if s is not None}
        per_side: dict[int, dict[str, float]] = {o: dict.fromkeys(sides, 0.0) for o in candidates}
        for kind, signature in sides.items():
            known = {o: s for o in candidates if (s := signatures[kind].get(o)) is not None}
            if not known:
                continue
            theirs = np.stack(list(known.values()))
            for other, similarity in zip(known, (theirs == signature).mean(axis=1), strict=True):
                per_side[other][kind] = float(similarity)
        # A candidate is as close as its least similar side.
        closeness = {o: min(s.values()) for o, s in per_side.items() if s}
        nearest, nearest_similarity = None, 0.0
        if similar:
            nearest = min(similar, key=lambda t: (-similar[t], t))
            nearest_similarity = similar[nearest]
        duplicates = {o: closeness[o] for o, s in per_side.items() if self.rule.confirms(s)}
        score = max(closeness.values(), default=0.0)
        ranked = tuple(sorted(duplicates, key=lambda t: (-duplicates[t], t))[:MAX_LISTED])
        return DuplicateMatch(
            cluster_id="",  # given by add_and_match, which knows the clusters
            is_duplicate=bool(ranked),
            score=max(0.0, min(1.0, score)),
            nearest_task_id=nearest,
            nearest_similarity=nearest_similarity,
            duplicate_of=ranked,
        )

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
                    for band in _band_keys(previous):
                        pipe.srem(self._key("lsh", kind, band), item.task_id)
                for band in _band_keys(signature):
                    bucket_keys.append(self._key("lsh", kind, band))
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
