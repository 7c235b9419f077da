"""Export records in Redis, so a fine-tune started later (or elsewhere) finds the export's files.

Keys: `tracetune:export:<export id>` (one JSON record), `tracetune:export:index` (sorted set of
ids by creation time) and `tracetune:export:latest:<project id>` for a project's newest export.
"""

from __future__ import annotations

from datetime import datetime

import redis
from pydantic import BaseModel, Field

from tracetune.sync.errors import NotFoundError
from tracetune.sync.redis_client import decoded
from tracetune.sync.timestamps import now_iso

EXPORT_PREFIX = "tracetune:export"


class ExportRecord(BaseModel):
    export_id: str
    project_id: int
    project_title: str
    path: str
    valid: bool
    examples: dict[str, int]
    created_at: str = Field(default_factory=now_iso)


class ExportRecords:
    """Read and write export records."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def save(self, record: ExportRecord) -> None:
        created = datetime.fromisoformat(record.created_at).timestamp()
        pipe = self.client.pipeline()
        pipe.set(f"{EXPORT_PREFIX}:{record.export_id}", record.model_dump_json())
        pipe.zadd(f"{EXPORT_PREFIX}:index", {record.export_id: created})
        pipe.set(f"{EXPORT_PREFIX}:latest:{record.project_id}", record.export_id)
        pipe.execute()

    def get(self, export_id: str) -> ExportRecord:
        raw = self.client.get(f"{EXPORT_PREFIX}:{export_id}")
        if raw is None:
            raise NotFoundError(f"no export {export_id!r}: run `tracetune export` first")
        return ExportRecord.model_validate_json(raw)

    def recent(self, limit: int = 50) -> list[ExportRecord]:
        ids = decoded(self.client.zrevrange(f"{EXPORT_PREFIX}:index", 0, limit - 1))
        raws = self.client.mget([f"{EXPORT_PREFIX}:{i}" for i in ids]) if ids else []
        return [ExportRecord.model_validate_json(raw) for raw in raws if raw is not None]

    def latest(self) -> ExportRecord:
        exports = self.recent(limit=1)
        if not exports:
            raise NotFoundError("no export yet: run `tracetune export PROJECT` first")
        return exports[0]
