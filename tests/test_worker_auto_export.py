"""The auto-export trigger: N newly reviewed tasks queue one debounced export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from export_projects import build_chat_project
from label_studio_sdk import LabelStudio
from plugins.rq_worker import wait_for_job
from rq import Queue
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry
from worker_env import worker_env

from tracetune.sync.export.records import ExportRecords
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import LabelStudioServer
from tracetune.sync.worker.auto_export import on_annotation_event

pytestmark = pytest.mark.integration


def _event(project_id: int, task_id: int, action: str = "ANNOTATION_CREATED", **kw: Any) -> dict:
    """The body Label Studio posts to a project webhook when an annotation is submitted."""
    return {
        "action": action,
        "annotation": {"id": 9000 + task_id, "task": task_id, "result": [], **kw},
        "task": {"id": task_id, "project": project_id},
        "project": {"id": project_id, "title": "Docs QA"},
    }


def _settings(redis_url: str, **kw: Any) -> Settings:
    return Settings(
        redis_url=redis_url,
        tracetune_auto_export_min_tasks=3,
        tracetune_auto_export_debounce_s=1,
        **kw,
    )


def test_a_burst_of_reviews_schedules_exactly_one_export(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    settings = _settings(redis_url)

    outcomes = [
        on_annotation_event(client, _event(7, 1), settings),
        on_annotation_event(client, _event(7, 1, action="ANNOTATION_UPDATED"), settings),
        on_annotation_event(client, _event(7, 2, was_cancelled=True), settings),
        on_annotation_event(client, _event(7, 3, action="TASKS_DELETED"), settings),
        on_annotation_event(client, _event(7, 4), settings),
        on_annotation_event(client, _event(7, 5), settings),
        *[on_annotation_event(client, _event(7, t), settings) for t in range(6, 20)],
    ]

    export_id = outcomes[5]
    assert outcomes[:5] == [None] * 5  # one task twice, a skip and a deletion do not count
    assert export_id is not None and export_id.startswith("x-")
    assert outcomes[6:] == [None] * 14
    scheduled = ScheduledJobRegistry(queue=Queue("tracetune", connection=client))
    assert scheduled.get_job_ids() == [export_id]
    off = Settings(redis_url=redis_url)  # TRACETUNE_AUTO_EXPORT_MIN_TASKS=0: no trigger
    assert on_annotation_event(client, _event(8, 1), off) is None


def test_the_scheduled_export_runs_and_the_next_burst_schedules_another(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
    rq_worker,
) -> None:
    project = build_chat_project(label_studio, project_title)
    client = redis.Redis.from_url(redis_url)
    settings = _settings(redis_url)
    task_ids = list(project.tasks.values())
    first = [on_annotation_event(client, _event(project.id, t), settings) for t in task_ids]
    export_id = next(e for e in first if e is not None)
    assert sum(e is not None for e in first) == 1

    rq_worker(worker_env(tmp_path, redis_url, label_studio_server.url, label_studio_server.token))
    job = wait_for_job(redis_url, export_id, timeout_s=120)

    assert job.get_status() == JobStatus.FINISHED, job.meta
    record = ExportRecords(client).get(export_id)
    assert (record.project_id, record.project_title) == (project.id, project_title)
    assert Path(record.path, "openai_sft.train.jsonl").exists()
    second = [on_annotation_event(client, _event(project.id, t), settings) for t in task_ids[:3]]
    assert second[:2] == [None, None] and second[2] not in (None, export_id)
