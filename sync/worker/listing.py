"""Every job on the tracetune queue, by state, with a one-line reason for failures.

The reason is what the job recorded (`job.meta["reason"]`, set by `jobs._guarded`), else the
last line of RQ's stored traceback (e.g. an abandoned job whose worker died).
"""

from __future__ import annotations

from typing import Any

from rq.job import Job
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from tracetune.sync.settings import Settings
from tracetune.sync.worker.jobs import queue


def failure_reason(job: Job) -> str | None:
    reason = job.meta.get("reason")
    if reason:
        return str(reason)
    result = job.latest_result()
    text = (getattr(result, "exc_string", None) or "").strip()
    return text.splitlines()[-1] if text else None


def _row(job: Job, state: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "state": state,
        "id": job.id,
        "description": job.description or job.func_name,
        "kind": job.meta.get("kind"),
        "enqueued_at": job.enqueued_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "retries_left": job.retries_left,
    }
    # A failed job always has a reason; a scheduled or queued one has one while retrying.
    if state == "failed" or job.meta.get("reason"):
        row["reason"] = failure_reason(job)
    return row


def list_jobs(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """Rows for running, queued, scheduled, deferred, failed and finished jobs, in that order."""
    q = queue(settings)
    sources: list[tuple[str, list[str]]] = [
        ("running", StartedJobRegistry(queue=q).get_job_ids(0, limit - 1)),
        ("queued", q.get_job_ids(0, limit)),
        ("scheduled", ScheduledJobRegistry(queue=q).get_job_ids(0, limit - 1)),
        ("deferred", DeferredJobRegistry(queue=q).get_job_ids(0, limit - 1)),
        ("failed", FailedJobRegistry(queue=q).get_job_ids(0, limit - 1, desc=True)),
        ("finished", FinishedJobRegistry(queue=q).get_job_ids(0, limit - 1, desc=True)),
    ]
    rows = []
    for state, ids in sources:
        for job in Job.fetch_many(ids, connection=q.connection):
            if job is not None:
                rows.append(_row(job, state))
    return rows
