"""RQ jobs: plain functions that a worker runs, or the CLI runs inline with `--now`.

Jobs read their settings from the worker's environment; their arguments are plain data.
Transient failures (a server down: `ServiceUnavailableError`) are retried with backoff through
RQ's `Retry`; any other expected failure (bad input, bad key, a file failing validation) fails
at once. Either way `job.meta["reason"]` keeps a one-line reason that `tracetune jobs` shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from redis import Redis
from rq import Queue, Retry
from rq.job import Job, get_current_job

from tracetune.sync.errors import ServiceUnavailableError
from tracetune.sync.export.filters import ExportFilters, FeedbackRule, PiiPolicy
from tracetune.sync.export.records import ExportRecord, ExportRecords
from tracetune.sync.export.run import ExportRequest, ExportResult, new_export_id, run_export
from tracetune.sync.finetune.local_trl import is_main_process
from tracetune.sync.finetune.records import FineTuneRecord, FineTuneRecords, Method
from tracetune.sync.finetune.registry import export_files, provider_for, provider_spec
from tracetune.sync.models.finetunes import register_fine_tune
from tracetune.sync.redis_client import redis_client
from tracetune.sync.settings import Settings

T = TypeVar("T")


def queue(settings: Settings, connection: Redis | None = None) -> Queue:
    return Queue(
        settings.tracetune_queue, connection=connection or redis_client(settings.redis_url)
    )


def retry_policy(settings: Settings) -> Retry | None:
    """`TRACETUNE_JOB_RETRIES` retries, waiting backoff, then 2, 4... times it between them."""
    if settings.tracetune_job_retries == 0:
        return None
    base = settings.tracetune_retry_backoff_s
    return Retry(
        max=settings.tracetune_job_retries,
        interval=[base * 2**attempt for attempt in range(settings.tracetune_job_retries)],
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _guarded(fn: Callable[[], T]) -> T:
    """Run a job body; record the failure reason and stop retries of non-transient errors."""
    job = get_current_job()
    try:
        return fn()
    except Exception as exc:
        if job is not None:
            job.meta["reason"] = _reason(exc)
            job.meta["attempts"] = int(job.meta.get("attempts", 0)) + 1
            transient = isinstance(exc, ServiceUnavailableError)
            if not transient:
                job.retries_left = 0
            job.meta["retrying"] = bool(transient and job.retries_left)
            job.save_meta()
        raise


def export_request_from(options: Mapping[str, Any]) -> ExportRequest:
    """Plain job arguments → an `ExportRequest` (the CLI builds the same mapping)."""
    filters = ExportFilters(
        pii=PiiPolicy(options.get("pii", PiiPolicy.REDACT.value)),
        max_scores=dict(options.get("max_scores") or {}),
        dedupe=bool(options.get("dedupe", False)),
        feedback=tuple(FeedbackRule.parse(rule) for rule in options.get("feedback") or ()),
    )
    return ExportRequest(
        project=str(options["project"]),
        filters=filters,
        formats=tuple(options.get("formats") or ("openai", "trl")),
        validation_fraction=float(options.get("validation_fraction", 0.1)),
        seed=str(options.get("seed", "tracetune")),
        model=options.get("model"),
        export_id=options.get("export_id"),
    )


def record_export(settings: Settings, result: ExportResult) -> ExportRecord:
    record = ExportRecord(
        export_id=result.export_id,
        project_id=int(result.manifest["project"]["id"]),
        project_title=str(result.manifest["project"]["title"]),
        path=str(result.path.resolve()),
        valid=result.valid,
        examples=result.manifest["examples"],
    )
    ExportRecords(redis_client(settings.redis_url)).save(record)
    return record


def export_job(options: dict[str, Any]) -> dict[str, Any]:
    """Export one project (RQ job). Returns the export record as a dict."""

    def body() -> dict[str, Any]:
        settings = Settings()
        if options.get("auto"):
            from tracetune.sync.worker.auto_export import clear_schedule  # imports this module

            clear_schedule(redis_client(settings.redis_url), int(options["project"]))
        result = run_export(settings, export_request_from(options))
        return record_export(settings, result).model_dump()

    return _guarded(body)


def enqueue_export(settings: Settings, options: dict[str, Any], delay_s: int = 0) -> Job:
    """Queue an export; the job id is the export id, so a retried job rewrites one folder."""
    options = dict(options)
    options.setdefault("export_id", new_export_id())
    q = queue(settings)
    common: dict[str, Any] = {
        "job_id": options["export_id"],
        "retry": retry_policy(settings),
        "job_timeout": settings.tracetune_job_timeout_s,
        "description": f"export {options['project']}",
        "meta": {"kind": "export", "project": str(options["project"])},
        "failure_ttl": 7 * 24 * 3600,
        "result_ttl": 7 * 24 * 3600,
    }
    if delay_s > 0:
        return q.enqueue_in(timedelta(seconds=delay_s), export_job, options, **common)
    return q.enqueue(export_job, options, **common)


def settle(settings: Settings, records: FineTuneRecords, record: FineTuneRecord) -> FineTuneRecord:
    """A succeeded job's model goes into the model registry (once; a retry registers it late).

    A registry that is down raises `ServiceUnavailableError`, so the job is retried like any
    transient failure; the trained model is already on the record and is not trained again.
    """
    if record.status == "succeeded" and is_main_process():
        register_fine_tune(settings, records, record)
        return records.get(record.id)
    return record


def finetune_start_job(record_id: str) -> dict[str, Any]:
    """Start a fine-tuning job (RQ job); provider jobs are then polled by `finetune_poll_job`."""

    def body() -> dict[str, Any]:
        settings = Settings()
        connection = redis_client(settings.redis_url)
        records = FineTuneRecords(connection)
        record = records.get(record_id)
        if record.done:
            return settle(settings, records, record).model_dump()
        try:
            record = provider_for(record.provider, settings, records).start(record)
        except Exception as exc:
            job = get_current_job()
            transient = isinstance(exc, ServiceUnavailableError)
            if transient and job is not None and job.retries_left:
                records.update(record_id, error=f"retrying: {_reason(exc)}")
            else:
                records.update(record_id, status="failed", error=_reason(exc))
            raise
        if not record.done and provider_spec(record.provider).polls:
            _enqueue_poll(settings, connection, record.id)
        return settle(settings, records, record).model_dump()

    return _guarded(body)


def finetune_poll_job(record_id: str) -> dict[str, Any]:
    """Refresh a provider job's status; re-queue itself until the job is finished."""

    def body() -> dict[str, Any]:
        settings = Settings()
        connection = redis_client(settings.redis_url)
        records = FineTuneRecords(connection)
        record = records.get(record_id)
        record = provider_for(record.provider, settings, records).refresh(record)
        if not record.done:
            _enqueue_poll(settings, connection, record.id)
        return settle(settings, records, record).model_dump()

    return _guarded(body)


def _enqueue_poll(settings: Settings, connection: Redis, record_id: str) -> None:
    queue(settings, connection).enqueue_in(
        timedelta(seconds=settings.tracetune_poll_interval_s),
        finetune_poll_job,
        record_id,
        retry=retry_policy(settings),
        description=f"poll fine-tune {record_id}",
        meta={"kind": "finetune_poll", "record": record_id},
    )


def enqueue_finetune(settings: Settings, record: FineTuneRecord, records: FineTuneRecords) -> Job:
    # The record names its RQ job before the job exists, so the worker never reads it without.
    record.rq_job_id = f"start-{record.id}"
    records.save(record)
    return queue(settings, records.client).enqueue(
        finetune_start_job,
        record.id,
        job_id=record.rq_job_id,
        retry=retry_policy(settings),
        job_timeout=settings.tracetune_job_timeout_s * 4,
        description=f"fine-tune {record.id} ({record.provider})",
        meta={"kind": "finetune", "record": record.id},
        failure_ttl=7 * 24 * 3600,
        result_ttl=7 * 24 * 3600,
    )


def new_finetune_record(
    export: ExportRecord,
    provider: str,
    method: Method,
    model: str,
    hyperparameters: Mapping[str, Any],
    suffix: str | None,
) -> FineTuneRecord:
    provider_spec(provider)  # an unknown provider fails here, before anything is saved
    return FineTuneRecord(
        provider=provider,
        method=method,
        model=model,
        export_id=export.export_id,
        files=export_files(Path(export.path), provider, method),
        hyperparameters=dict(hyperparameters),
        suffix=suffix,
    )
