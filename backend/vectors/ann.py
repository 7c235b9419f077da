"""A project's task vectors in every process: an HNSW index kept current from Redis.

Reading every task vector of a project from Redis on each request costs 1.5 KB a task (150 MB
at 100,000 tasks). Instead each process holds the project's vectors in memory, with an HNSW
graph over them (usearch), and Redis holds the truth:

- an append-only log (a stream; one entry per predicted batch: task ids and float32 vectors),
  which every process reads from where it stopped, in log order, before each use, so gunicorn
  workers and replicas sharing one Redis converge on the same vectors (the last write of a
  task wins everywhere);
- a snapshot (the serialised graph, the exact vectors, and the log position it covers),
  written every `snapshot_every` new vectors by whichever process gets the lock, so a
  restarted process loads it (a copy, no graph building) and replays only the log after it.
  Log entries older than the previous snapshot are trimmed; a process that far behind reloads.

Each process also remembers which tasks every log entry it applied wrote (`ids_since`), so a
near-duplicate match kept from an earlier request is brought up to date by scoring the few
vectors written since, instead of searching the graph again (`duplicates.py`).

usearch, over faiss-cpu and hnswlib: it adds, replaces and removes vectors by integer key (task
ids directly; faiss's HNSW cannot remove, hnswlib has had no release since 2023), stores
vectors as int8 for a small, fast graph, and serialises to bytes in a fraction of a second. The
graph only proposes candidates; similarities are computed exactly from the float32 vectors, so
scores and thresholds are those of an exact search.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import redis
from usearch.index import Index

from tracetune.backend.cache import key

#: usearch graph settings: 16 links a node, 64 candidates explored when adding and searching.
CONNECTIVITY = 16
EXPANSION = 64
#: At least this many candidates are drawn from the graph for any query before exact scoring.
MIN_CANDIDATES = 16
LOG_READ = 64  # log entries (batches) read per round trip
SNAPSHOT_CHUNK = 32 * 1024 * 1024  # bytes per snapshot value, well under Redis's 512 MB
LOCK_S = 300
#: `ids_since` answers for at most this many tasks written since a position (beyond that a
#: search of the graph costs less than scoring them all).
RECENT_LIMIT = 4096


def _position(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
    return int(ms), int(seq or 0)


def _after(entry_id: str) -> str:
    """The smallest stream id greater than `entry_id` (for XTRIM MINID)."""
    ms, seq = _position(entry_id)
    return f"{ms}-{seq + 1}"


_NO_IDS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Written:
    """The tasks whose vectors log entries wrote, and those among them written before."""

    ids: np.ndarray
    rewritten: set[int]


class VectorIndex:
    """One scope's vectors (a project, an ad hoc run) as this process knows them."""

    def __init__(self, client: redis.Redis, scope: str, snapshot_every: int = 10_000) -> None:
        self.client = client
        self.scope = scope
        self.snapshot_every = snapshot_every
        self._lock = threading.RLock()
        self._graph: Index | None = None
        self._vectors: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        self._ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self._rows: dict[int, int] = {}
        self._applied = "0-0"  # the last log entry reflected here
        # Per log entry applied: its position, the tasks it wrote, those it wrote again.
        self._journal: list[tuple[tuple[int, int], np.ndarray, np.ndarray]] = []
        self._journal_from = (0, 0)  # what the journal covers: every entry after this one
        self._journaled = 0  # task ids in the journal
        self._loaded = False

    # Redis keys --------------------------------------------------------------------------
    def _key(self, *parts: str | int) -> str:
        return key("index", self.scope, *parts)

    @property
    def _log(self) -> str:
        return self._key("vector_log")

    @property
    def _head(self) -> str:
        """The snapshot's pointer: generation, position, trimmed_to, pending."""
        return self._key("vector_snapshot")

    # Reading -----------------------------------------------------------------------------
    def size(self) -> int:
        """How many tasks have a vector (after reading the log)."""
        with self._lock:
            self.refresh()
            return len(self._rows)

    def refresh(self) -> None:
        """Apply what any process appended since this one last looked."""
        with self._lock:
            if not self._loaded:
                self._migrate_legacy_hash()
                self._load_snapshot()
                self._loaded = True
            while True:
                pipe = self.client.pipeline(transaction=True)
                pipe.hget(self._head, "trimmed_to")
                pipe.xrange(self._log, min=f"({self._applied}", count=LOG_READ)
                trimmed_to, entries = pipe.execute()
                if trimmed_to and _position(trimmed_to) > _position(self._applied):
                    self._load_snapshot()  # what we missed is gone from the log
                    continue
                for entry_id, fields in entries:
                    self._apply(fields, _position(entry_id))
                    self._applied = entry_id.decode()
                if len(entries) < LOG_READ:
                    return

    def vectors_of(self, task_ids: Sequence[int]) -> dict[int, np.ndarray]:
        with self._lock:
            self.refresh()
            return {t: self._vectors[self._rows[t]].copy() for t in task_ids if t in self._rows}

    def position(self) -> str:
        """The last log entry this process applied (read before a search, a position every
        later `ids_since` can be asked about)."""
        with self._lock:
            return self._applied

    def ids_since(self, position: str) -> Written | None:
        """The tasks whose vectors were written after `position` (after reading the log), or
        None when this process does not know (it loaded a later snapshot) or they are more
        than `RECENT_LIMIT`."""
        with self._lock:
            self.refresh()
            after = _position(position)
            if after < self._journal_from:
                return None
            start = bisect.bisect_right(self._journal, after, key=lambda entry: entry[0])
            entries = self._journal[start:]
            if sum(len(written) for _, written, _ in entries) > RECENT_LIMIT:
                return None
            return Written(
                np.unique(np.concatenate([w for _, w, _ in entries] or [_NO_IDS])),
                {int(t) for _, _, replaced in entries for t in replaced},
            )

    def matrix_of(self, task_ids: np.ndarray) -> np.ndarray:
        """The vectors of indexed tasks, one row each (every id must be indexed)."""
        with self._lock:
            return self._vectors[[self._rows[int(t)] for t in task_ids]]

    def unchanged(self, task_ids: Sequence[int], vectors: np.ndarray) -> list[bool]:
        """Per task, whether the index holds exactly this vector for it."""
        with self._lock:
            self.refresh()
            rows = np.array([self._rows.get(t, -1) for t in task_ids], dtype=np.int64)
            if not len(self._rows) or vectors.shape[1:] != self._vectors.shape[1:]:
                return [False] * len(rows)
            equal = np.all(self._vectors[np.maximum(rows, 0)] == vectors, axis=1)
            return (equal & (rows >= 0)).tolist()

    def contains(self, task_ids: Sequence[int]) -> set[int]:
        with self._lock:
            self.refresh()
            return {t for t in task_ids if t in self._rows}

    def search(self, queries: np.ndarray, count: int) -> list[list[tuple[int, float]]]:
        """Per query, up to `count` (task id, exact cosine) pairs, most similar first."""
        ids, scores = self.search_arrays(queries, count)
        return [
            [(int(t), float(x)) for t, x in zip(row_ids, row_scores, strict=True) if t >= 0]
            for row_ids, row_scores in zip(ids.tolist(), scores.tolist(), strict=True)
        ]

    def search_arrays(self, queries: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """`search` as two (queries x count) arrays, task ids and exact cosines, most similar
        first; a query with fewer hits is padded with id -1 and score -inf. Every query of a
        batch is scored in one product."""
        empty = (np.full((len(queries), 0), -1, np.int64), np.zeros((len(queries), 0), np.float32))
        with self._lock:
            self.refresh()
            size = len(self._rows)
            if not size or not len(queries):
                return empty
            assert self._graph is not None
            wanted = min(size, max(count, MIN_CANDIDATES))
            # One thread: a batch is ~100 queries, and threads only contend with the
            # other requests this process and its siblings serve.
            found = self._graph.search(np.ascontiguousarray(queries, np.float32), wanted, threads=1)
            keys = np.atleast_2d(found.keys).astype(np.int64)
            counts = np.atleast_1d(getattr(found, "counts", keys.shape[1]))
            valid = np.arange(keys.shape[1])[np.newaxis, :] < counts[:, np.newaxis]
            rows = np.array([self._rows.get(t, -1) for t in keys.ravel().tolist()], np.int64)
            rows = rows.reshape(keys.shape)
            valid &= rows >= 0
            gathered = self._vectors[np.where(valid, rows, 0)]
        scores = np.matmul(gathered, np.asarray(queries, np.float32)[:, :, np.newaxis])[..., 0]
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :count]
        ids = np.where(valid, keys, -1)
        return np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)

    # Writing -----------------------------------------------------------------------------
    def append(self, task_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Record new or changed vectors in the log, then apply the log (ours included)."""
        with self._lock:
            self.refresh()
            changed = [
                i
                for i, t in enumerate(task_ids)
                if t not in self._rows
                or not np.array_equal(self._vectors[self._rows[t]], vectors[i])
            ]
            if not changed:
                return
            ids = np.asarray([task_ids[i] for i in changed], dtype=np.int64)
            matrix = np.ascontiguousarray(vectors[changed], dtype=np.float32)
            pipe = self.client.pipeline(transaction=False)
            pipe.xadd(self._log, {"ids": ids.tobytes(), "vectors": matrix.tobytes()})
            pipe.hincrby(self._head, "pending", len(ids))
            _, pending = pipe.execute()
            self.refresh()
            if int(pending) >= max(self.snapshot_every, len(self._rows) // 4):
                self._write_snapshot()

    def drop(self) -> None:
        with self._lock:
            for found in self.client.scan_iter(match=self._key("vector_*"), count=1000):
                self.client.delete(found)
            self._reset()
            self._loaded = False

    # Internals ---------------------------------------------------------------------------
    def _reset(self) -> None:
        self._graph = None
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._rows = {}
        self._applied = "0-0"
        self._journal = []
        self._journal_from = (0, 0)
        self._journaled = 0

    def _new_graph(self, dim: int) -> Index:
        return Index(
            ndim=dim,
            metric="cos",
            dtype="i8",
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION,
            expansion_search=EXPANSION,
        )

    def _apply(self, fields: dict[bytes, bytes], at: tuple[int, int]) -> None:
        logged = np.frombuffer(fields[b"ids"], dtype=np.int64)
        if not len(logged):
            return
        rows = np.frombuffer(fields[b"vectors"], dtype=np.float32).reshape(len(logged), -1)
        last = {int(t): i for i, t in enumerate(logged)}  # a task twice in one entry: last wins
        ids = np.fromiter(last, dtype=np.int64, count=len(last))
        vectors: np.ndarray = rows[list(last.values())]
        if self._graph is None:
            self._graph = self._new_graph(vectors.shape[1])
            self._vectors = np.zeros((max(1024, len(ids)), vectors.shape[1]), dtype=np.float32)
            self._ids = np.zeros(len(self._vectors), dtype=np.int64)
        replaced = np.array([t for t in ids if int(t) in self._rows], dtype=np.int64)
        if len(replaced):
            self._graph.remove(replaced)
        self._journal.append((at, ids, replaced))
        self._journaled += len(ids)
        while self._journaled - len(self._journal[0][1]) > RECENT_LIMIT:
            self._journal_from, dropped, _ = self._journal.pop(0)  # older than answers need
            self._journaled -= len(dropped)
        self._grow(len(self._rows) + len(ids))
        for task_id, vector in zip(ids, vectors, strict=True):
            row = self._rows.setdefault(int(task_id), len(self._rows))
            self._vectors[row] = vector
            self._ids[row] = task_id
        self._graph.add(ids, np.ascontiguousarray(vectors))

    def _grow(self, needed: int) -> None:
        if needed <= len(self._vectors):
            return
        capacity = max(needed, 2 * len(self._vectors))
        grown = np.zeros((capacity, self._vectors.shape[1]), dtype=np.float32)
        grown[: len(self._vectors)] = self._vectors
        ids = np.zeros(capacity, dtype=np.int64)
        ids[: len(self._ids)] = self._ids
        self._vectors, self._ids = grown, ids

    def _write_snapshot(self) -> None:
        """Store this process's state (it was just refreshed) if no other process is at it."""
        lock = self._key("vector_snapshot_lock")
        token = uuid.uuid4().hex
        if self._graph is None or not self.client.set(lock, token, nx=True, ex=LOCK_S):
            return
        try:
            size = len(self._rows)
            generation = uuid.uuid4().hex[:12]
            data = self._key("vector_snapshot", generation)
            blobs = {
                "graph": bytes(cast(bytearray, self._graph.save())),
                "vectors": self._vectors[:size].tobytes(),
                "ids": self._ids[:size].tobytes(),
            }
            chunks: dict[str, int] = {}
            for name, blob in blobs.items():
                parts = [blob[i : i + SNAPSHOT_CHUNK] for i in range(0, len(blob), SNAPSHOT_CHUNK)]
                chunks[name] = len(parts)
                for number, part in enumerate(parts):
                    self.client.hset(data, f"{name}:{number}", part)
            previous = cast(
                list[bytes | None], self.client.hmget(self._head, ["generation", "position"])
            )
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(
                self._head,
                mapping={
                    "generation": generation,
                    "position": self._applied,
                    "dim": self._vectors.shape[1],
                    "chunks": ",".join(f"{n}={c}" for n, c in chunks.items()),
                    "pending": 0,
                    **({"trimmed_to": previous[1]} if previous[1] else {}),
                },
            )
            if previous[1]:
                pipe.xtrim(self._log, minid=_after(previous[1].decode()))
            if previous[0]:
                pipe.delete(self._key("vector_snapshot", previous[0].decode()))
            pipe.execute()
        finally:
            if self.client.get(lock) == token.encode():
                self.client.delete(lock)

    def _load_snapshot(self) -> None:
        """Replace this process's state with the stored snapshot (or nothing, when none)."""
        while True:
            head = cast(dict[bytes, bytes], self.client.hgetall(self._head))
            self._reset()
            if b"generation" not in head:
                return
            blobs = self._read_blobs(head)
            if blobs is None:
                continue  # replaced while we read: read the new one
            size = len(blobs["ids"]) // 8
            dim = int(head[b"dim"])
            self._ids = np.frombuffer(blobs["ids"], dtype=np.int64).copy()
            vectors = np.frombuffer(blobs["vectors"], dtype=np.float32)
            self._vectors = vectors.reshape(size, dim).copy()
            self._rows = {int(t): row for row, t in enumerate(self._ids)}
            self._graph = Index.restore(blobs["graph"], view=False) if size else None
            self._applied = head[b"position"].decode()
            self._journal_from = _position(self._applied)
            return

    def _read_blobs(self, head: dict[bytes, bytes]) -> dict[str, bytes] | None:
        data = self._key("vector_snapshot", head[b"generation"].decode())
        blobs: dict[str, bytes] = {}
        for spec in head[b"chunks"].decode().split(","):
            name, _, count = spec.partition("=")
            parts = []
            for number in range(int(count)):
                part = self.client.hget(data, f"{name}:{number}")
                if part is None:
                    return None
                parts.append(cast(bytes, part))
            blobs[name] = b"".join(parts)
        return blobs

    def _migrate_legacy_hash(self) -> None:
        """Move vectors an older version kept in one hash (`…:vectors`) into the log, once."""
        legacy = self._key("vectors")
        if not self.client.exists(legacy):
            return
        lock = self._key("vector_snapshot_lock")
        if not self.client.set(lock, "migrating", nx=True, ex=LOCK_S):
            return  # another process is moving them; the log will have them
        try:
            for ids, vectors in _scan_hash(self.client, legacy):
                self.client.xadd(self._log, {"ids": ids.tobytes(), "vectors": vectors.tobytes()})
            self.client.delete(legacy)
        finally:
            self.client.delete(lock)


def _scan_hash(client: redis.Redis, name: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    cursor: Any = 0
    while True:
        cursor, chunk = client.hscan(name, cursor, count=1000)
        if chunk:
            raw = cast(dict[bytes, bytes], chunk)
            ids = np.array([int(k) for k in raw], dtype=np.int64)
            yield ids, np.stack([np.frombuffer(v, dtype=np.float32) for v in raw.values()])
        if not int(cursor):
            return


class VectorIndexes:
    """Every scope's `VectorIndex` this process has used (one per project)."""

    def __init__(self, client: redis.Redis, snapshot_every: int = 10_000) -> None:
        self.client = client
        self.snapshot_every = snapshot_every
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.Lock()

    def get(self, scope: str) -> VectorIndex:
        with self._lock:
            index = self._indexes.get(scope)
            if index is None:
                index = self._indexes[scope] = VectorIndex(self.client, scope, self.snapshot_every)
            return index
