"""Fine-tuning job and export records in Redis, so they outlive workers and CLI processes.

Keys: `tracetune:jobs:finetune:<id>` (one JSON record), `tracetune:jobs:finetune` (sorted set
of ids by creation time), `tracetune:export:<export id>` and `tracetune:export:index` for
exports, `tracetune:export:latest:<project id>` for the newest export of a project.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field

from tracetune.sync.errors import NotFoundError

FINETUNE_PREFIX = "tracetune:jobs:finetune"
EXPORT_PREFIX = "tracetune:export"

#: Statuses after which a job never changes again.
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class FineTuneRecord(BaseModel):
    """One fine-tuning job as tracetune knows it, whatever the provider."""

    id: str = Field(default_factory=lambda: f"ft-{secrets.token_hex(5)}")
    provider: Literal["openai", "local"]
    method: Literal["sft", "dpo"] = "sft"
    status: str = "queued"
    model: str
    export_id: str | None = None
    files: dict[str, str] = Field(default_factory=dict)
    provider_files: dict[str, str] = Field(default_factory=dict)
    provider_job_id: str | None = None
    fine_tuned_model: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    suffix: str | None = None
    error: str | None = None
    events: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    rq_job_id: str | None = None
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)
    finished_at: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class ExportRecord(BaseModel):
    export_id: str
    project_id: int
    project_title: str
    path: str
    valid: bool
    examples: dict[str, int]
    created_at: str = Field(default_factory=now_iso)


class JobRecords:
    """Read and write fine-tune and export records."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def save(self, record: FineTuneRecord) -> FineTuneRecord:
        record.updated_at = now_iso()
        if record.done and record.finished_at is None:
            record.finished_at = record.updated_at
        created = datetime.fromisoformat(record.created_at).timestamp()
        pipe = self.client.pipeline()
        pipe.set(f"{FINETUNE_PREFIX}:{record.id}", record.model_dump_json())
        pipe.zadd(FINETUNE_PREFIX, {record.id: created})
        pipe.execute()
        return record

    def get(self, record_id: str) -> FineTuneRecord:
        raw = self.client.get(f"{FINETUNE_PREFIX}:{record_id}")
        if raw is None:
            raise NotFoundError(f"no fine-tuning job {record_id!r}")
        return FineTuneRecord.model_validate_json(raw)

    def update(self, record_id: str, **fields: Any) -> FineTuneRecord:
        record = self.get(record_id).model_copy(update=fields)
        return self.save(record)

    def recent(self, limit: int = 50) -> list[FineTuneRecord]:
        ids = _ids(self.client.zrevrange(FINETUNE_PREFIX, 0, limit - 1))
        raws = self.client.mget([f"{FINETUNE_PREFIX}:{i}" for i in ids]) if ids else []
        return [FineTuneRecord.model_validate_json(raw) for raw in raws if raw is not None]

    def save_export(self, record: ExportRecord) -> None:
        created = datetime.fromisoformat(record.created_at).timestamp()
        pipe = self.client.pipeline()
        pipe.set(f"{EXPORT_PREFIX}:{record.export_id}", record.model_dump_json())
        pipe.zadd(f"{EXPORT_PREFIX}:index", {record.export_id: created})
        pipe.set(f"{EXPORT_PREFIX}:latest:{record.project_id}", record.export_id)
        pipe.execute()

    def export(self, export_id: str) -> ExportRecord:
        raw = self.client.get(f"{EXPORT_PREFIX}:{export_id}")
        if raw is None:
            raise NotFoundError(f"no export {export_id!r}: run `tracetune export` first")
        return ExportRecord.model_validate_json(raw)

    def exports(self, limit: int = 50) -> list[ExportRecord]:
        ids = _ids(self.client.zrevrange(f"{EXPORT_PREFIX}:index", 0, limit - 1))
        raws = self.client.mget([f"{EXPORT_PREFIX}:{i}" for i in ids]) if ids else []
        return [ExportRecord.model_validate_json(raw) for raw in raws if raw is not None]

    def latest_export(self) -> ExportRecord:
        exports = self.exports(limit=1)
        if not exports:
            raise NotFoundError("no export yet: run `tracetune export PROJECT` first")
        return exports[0]


def _ids(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
