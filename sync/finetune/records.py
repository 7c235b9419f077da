"""Fine-tuning job records in Redis, so they outlive workers and CLI processes.

Keys: `tracetune:jobs:finetune:<id>` (one JSON record) and `tracetune:jobs:finetune` (sorted
set of ids by creation time).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field

from tracetune.sync.errors import NotFoundError
from tracetune.sync.redis_client import decoded
from tracetune.sync.timestamps import now_iso

FINETUNE_PREFIX = "tracetune:jobs:finetune"

#: What a job trains on: chat examples (SFT) or preference pairs (DPO).
Method = Literal["sft", "dpo"]

#: Statuses after which a job never changes again.
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class FineTuneRecord(BaseModel):
    """One fine-tuning job as tracetune knows it, whatever the provider."""

    id: str = Field(default_factory=lambda: f"ft-{secrets.token_hex(5)}")
    #: A name in the provider registry (`tracetune.sync.finetune.registry.PROVIDERS`).
    provider: str
    method: Method = "sft"
    status: str = "queued"
    model: str
    export_id: str | None = None
    files: dict[str, str] = Field(default_factory=dict)
    provider_files: dict[str, str] = Field(default_factory=dict)
    provider_job_id: str | None = None
    fine_tuned_model: str | None = None
    #: The model registry version this job's model became (`tracetune models show N`).
    model_version: int | None = None
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


class FineTuneRecords:
    """Read and write fine-tune records."""

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
        ids = decoded(self.client.zrevrange(FINETUNE_PREFIX, 0, limit - 1))
        raws = self.client.mget([f"{FINETUNE_PREFIX}:{i}" for i in ids]) if ids else []
        return [FineTuneRecord.model_validate_json(raw) for raw in raws if raw is not None]
