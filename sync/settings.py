"""The one settings object: environment variables and CLI flags resolve here.

Secrets are `SecretStr` so that they never show up in logs, reprs or task data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration shared by the sync, the ML backend and the worker."""

    # `.tracetune/stack.env` is written by `tracetune up`; a user's `.env` and real
    # environment variables take precedence over it.
    model_config = SettingsConfigDict(
        env_file=(".tracetune/stack.env", ".env"), env_file_encoding="utf-8", extra="ignore"
    )

    langsmith_api_key: SecretStr | None = None
    langsmith_endpoint: str = "https://api.smith.langchain.com"

    label_studio_url: str = "http://127.0.0.1:8080"
    label_studio_api_key: SecretStr | None = None

    redis_url: str = "redis://127.0.0.1:6379/0"

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None

    tracetune_embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    tracetune_state_dir: Path = Path(".tracetune")
    tracetune_backend_url: str = "http://127.0.0.1:9090"

    http_timeout_s: float = Field(default=60.0, gt=0)
    http_retries: int = Field(default=3, ge=0)
    import_batch_size: int = Field(default=2000, ge=1)
    # sync lock (docs/sync.md "Incremental, idempotent, crash-safe"): renewed every third of
    # this while its holder lives, so a killed sync frees its project this long after dying
    tracetune_sync_lock_ttl_s: float = Field(default=30.0, ge=1)

    # worker: export, fine-tuning jobs (sync/cli_jobs.py; README "From reviews to fine-tune files")
    tracetune_queue: str = "tracetune"
    tracetune_export_dir: Path | None = None
    tracetune_job_retries: int = Field(default=3, ge=0)
    tracetune_job_timeout_s: int = Field(default=3600, ge=10)
    tracetune_retry_backoff_s: int = Field(default=10, ge=0)
    tracetune_poll_interval_s: int = Field(default=30, ge=1)
    tracetune_page_size: int = Field(default=1000, ge=1, le=10000)
    tracetune_auto_export_min_tasks: int = Field(default=0, ge=0)
    tracetune_auto_export_debounce_s: int = Field(default=60, ge=0)
    tracetune_finetune_model: str = "gpt-4o-mini-2024-07-18"

    # model registry and evaluation (sync/models/, sync/evaluate/; docs/models.md)
    tracetune_registry_uri: str | None = None
    tracetune_registered_model: str = "tracetune-assistant"
    tracetune_eval_dir: Path | None = None

    # ML backend (backend/, README "The ML backend"); BASIC_AUTH_* named as in Label Studio
    basic_auth_user: str | None = None
    basic_auth_pass: SecretStr | None = None
    tracetune_backend_workers: int = Field(default=2, ge=1)
    tracetune_backend_threads: int = Field(default=4, ge=1)
    tracetune_backend_max_text_chars: int = Field(default=200_000, ge=1)
    tracetune_embedding_batch_size: int = Field(default=64, ge=1)
    #: Unset: each concept fires at its own calibrated threshold; set: one for all.
    tracetune_concept_threshold: float | None = Field(default=None, gt=0, lt=1)
    #: MinHash Jaccard that both the user turns and the answer must reach for a near-duplicate.
    tracetune_near_duplicate_threshold: float = Field(default=0.75, gt=0, le=1)
    # embedding runtime, vector index (docs/backend.md "Embedding runtimes", "Near-duplicates")
    tracetune_embedding_backend: Literal["auto", "torch", "onnx", "onnx-int8", "openvino"] = "auto"
    tracetune_model_cache_dir: Path | None = None
    tracetune_index_snapshot_every: int = Field(default=10_000, ge=100)

    @property
    def export_dir(self) -> Path:
        """Where exports land: `TRACETUNE_EXPORT_DIR`, else `<state dir>/exports`."""
        return self.tracetune_export_dir or self.tracetune_state_dir / "exports"

    @property
    def registry_uri(self) -> str:
        """MLflow registry: `TRACETUNE_REGISTRY_URI`, else SQLite in `<state dir>/registry.db`."""
        if self.tracetune_registry_uri:
            return self.tracetune_registry_uri
        return f"sqlite:///{(self.tracetune_state_dir / 'registry.db').resolve()}"

    @property
    def eval_dir(self) -> Path:
        """Where evaluations keep answers and reports: `TRACETUNE_EVAL_DIR` or `<state>/evals`."""
        return self.tracetune_eval_dir or self.tracetune_state_dir / "evals"

    def secret(self, name: str) -> str | None:
        """The plain value of a secret setting, for the one place that must send it."""
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None
