"""Sync state in Redis: the watermark, a cache of imported run ids, the sync lock.

Label Studio stays the truth. The run-id cache is trusted only while its size equals the
project's task count; after a crash mid-import or a task deleted in the UI the counts differ and
the ids are read again from Label Studio, so nothing is ever imported twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

import redis

from tracetune.sync.ingest.lock import SyncLock, break_lock


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SyncStore:
    """Sync state of one Label Studio instance, in Redis."""

    def __init__(self, client: redis.Redis, label_studio_url: str) -> None:
        self.client = client
        self.instance = hashlib.sha256(label_studio_url.encode()).hexdigest()[:12]

    def for_project(self, project_id: int) -> ProjectSyncState:
        return ProjectSyncState(self.client, f"tracetune:sync:{self.instance}:{project_id}")

    def _lock_key(self, project_title: str) -> str:
        # By title, not id: the lock is taken before the project is looked up or created.
        digest = hashlib.sha256(project_title.encode()).hexdigest()[:16]
        return f"tracetune:sync:{self.instance}:lock:{digest}"

    def lock(self, project_title: str, ttl_s: float) -> SyncLock:
        """One sync per project at a time, so two never do the same work (see `lock`)."""
        return SyncLock(self.client, self._lock_key(project_title), project_title, ttl_s)

    def break_lock(self, project_title: str) -> str | None:
        """Remove the project's sync lock; who held it, if anyone did."""
        return break_lock(self.client, self._lock_key(project_title))


class ProjectSyncState:
    """One project's watermarks (keyed by source selection) and run-id cache."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def watermark(self, source_key: str) -> datetime | None:
        raw = self.client.hget(f"{self.prefix}:watermarks", source_key)
        return datetime.fromisoformat(_text(raw)) if raw else None

    def set_watermark(self, source_key: str, value: datetime) -> None:
        self.client.hset(f"{self.prefix}:watermarks", source_key, value.isoformat())

    def cached_run_ids(self, expected_count: int) -> set[str] | None:
        """The cached ids if they still describe the project, else None."""
        key = f"{self.prefix}:run_ids"
        if self.client.scard(key) != expected_count:
            return None
        return {_text(member) for member in self.client.smembers(key)}

    def replace_run_ids(self, run_ids: Iterable[str]) -> None:
        key = f"{self.prefix}:run_ids"
        pipe = self.client.pipeline()
        pipe.delete(key)
        ids = list(run_ids)
        for start in range(0, len(ids), 5000):
            pipe.sadd(key, *ids[start : start + 5000])
        pipe.execute()

    def add_run_ids(self, run_ids: Iterable[str]) -> None:
        ids = list(run_ids)
        if ids:
            self.client.sadd(f"{self.prefix}:run_ids", *ids)
