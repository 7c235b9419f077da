"""Exports as RQ jobs on a real `tracetune worker` process, real Redis and real Label Studio."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from export_helpers import chat_data
from export_projects import build_chat_project
from label_studio_sdk import LabelStudio
from plugins.rq_worker import wait_for_job
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from worker_env import tracetune, worker_env

from tracetune.sync.export.run import ExportRequest, run_export
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import LabelStudioServer, free_port, start_redis

pytestmark = pytest.mark.integration


def _files(path: Path) -> dict[str, str]:
    manifest = json.loads((path / "manifest.json").read_text())
    return {name: info["sha256"] for name, info in manifest["files"].items()}


def _inline_export(server: LabelStudioServer, tmp_path: Path, title: str) -> dict[str, str]:
    settings = Settings(
        label_studio_url=server.url,
        label_studio_api_key=server.token,  # type: ignore[arg-type]
        tracetune_export_dir=tmp_path / "inline",
    )
    return _files(run_export(settings, ExportRequest(project=title, model="gpt-4o-mini")).path)


def test_a_queued_export_runs_on_the_worker_and_is_listed(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
    rq_worker,
) -> None:
    build_chat_project(label_studio, project_title)
    env = worker_env(tmp_path, redis_url, label_studio_server.url, label_studio_server.token)

    queued = tracetune("export", project_title, "--model", "gpt-4o-mini", env=env, cwd=tmp_path)
    job_id = queued.stdout.split()[2]
    assert queued.stdout.startswith(f"queued export {job_id} of {project_title!r}")
    listed = tracetune("jobs", env=env, cwd=tmp_path).stdout
    assert listed.startswith(f"queued     {job_id}")

    rq_worker(env)
    job = wait_for_job(redis_url, job_id)

    assert job.get_status() == JobStatus.FINISHED, job.meta
    record = job.return_value()
    path = Path(record["path"])
    assert path == tmp_path / "exports" / f"project-{record['project_id']}" / job_id
    assert _files(path) == _inline_export(label_studio_server, tmp_path, project_title)
    rows = [
        json.loads(line)
        for line in tracetune("jobs", "--json", env=env, cwd=tmp_path).stdout.splitlines()
    ]
    assert [(r["state"], r["id"], r["kind"]) for r in rows] == [("finished", job_id, "export")]


def test_a_worker_killed_mid_export_is_retried_into_the_same_files(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
    rq_worker,
) -> None:
    project = build_chat_project(label_studio, project_title)
    filler = [chat_data(f"filler-{i}", f"Filler question {i}?", "Filler.") for i in range(400)]
    label_studio.projects.import_tasks(id=project.id, request=[{"data": d} for d in filler])
    env = worker_env(
        tmp_path,
        redis_url,
        label_studio_server.url,
        label_studio_server.token,
        tracetune_retry_backoff_s="0",
    )
    job_id = tracetune(
        "export", project_title, "--model", "gpt-4o-mini", env=env, cwd=tmp_path
    ).stdout.split()[2]

    # One task per request makes the export take seconds: long enough to kill it mid-way.
    slow = rq_worker({**env, "TRACETUNE_PAGE_SIZE": "1"})
    wait_for_job(redis_url, job_id, (JobStatus.STARTED,), timeout_s=60)
    time.sleep(1.0)
    slow.kill()

    connection = redis.Redis.from_url(redis_url)
    assert Job.fetch(job_id, connection=connection).get_status() == JobStatus.STARTED
    root = tmp_path / "exports" / f"project-{project.id}"
    assert not (root / job_id).exists()  # nothing but the staging folder was written
    # RQ declares a job abandoned once its worker's heartbeat (90 s) lapses; jump ahead.
    StartedJobRegistry(queue=Queue("tracetune", connection=connection)).cleanup(
        timestamp=time.time() + 3600
    )
    assert Job.fetch(job_id, connection=connection).get_status() == JobStatus.QUEUED

    rq_worker(env)
    job = wait_for_job(redis_url, job_id)

    assert job.get_status() == JobStatus.FINISHED
    assert sorted(p.name for p in root.iterdir()) == [job_id]
    assert _files(root / job_id) == _inline_export(label_studio_server, tmp_path, project_title)
    manifest = json.loads((root / job_id / "manifest.json").read_text())
    assert manifest["counts"]["tasks"] == 412
    lines = (root / job_id / "openai_sft.train.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines))


def test_label_studio_unreachable_is_retried_then_fails_with_a_clear_reason(
    tmp_path: Path, redis_url: str, rq_worker
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    env = worker_env(tmp_path, redis_url, down, "token", tracetune_job_retries="2")
    job_id = tracetune("export", "Docs QA", env=env, cwd=tmp_path).stdout.split()[2]

    rq_worker(env)
    job = wait_for_job(redis_url, job_id, (JobStatus.FAILED,), timeout_s=120)

    assert job.meta["attempts"] == 3
    assert job.meta["reason"].startswith(
        f"ServiceUnavailableError: cannot reach Label Studio at {down}"
    )
    listed = tracetune("jobs", env=env, cwd=tmp_path).stdout
    assert f"failed     {job_id}" in listed
    assert "cannot reach Label Studio" in listed


def test_a_bad_request_fails_at_once_without_retries(
    tmp_path: Path, label_studio_server: LabelStudioServer, redis_url: str, rq_worker
) -> None:
    env = worker_env(tmp_path, redis_url, label_studio_server.url, label_studio_server.token)
    job_id = tracetune("export", "no such project here", env=env, cwd=tmp_path).stdout.split()[2]

    rq_worker(env)
    job = wait_for_job(redis_url, job_id, (JobStatus.FAILED,))

    assert job.meta["attempts"] == 1
    assert job.meta["reason"] == (
        "NotFoundError: no Label Studio project titled 'no such project here' "
        f"at {label_studio_server.url}"
    )


def test_redis_restarted_between_jobs(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    project_title: str,
    rq_worker,
) -> None:
    build_chat_project(label_studio, project_title)
    port = free_port()
    own_redis = start_redis(port, tmp_path / "redis")  # append-only: survives a restart
    url = own_redis.url
    try:
        env = worker_env(tmp_path, url, label_studio_server.url, label_studio_server.token)
        rq_worker(env)
        first = tracetune("export", project_title, env=env, cwd=tmp_path).stdout.split()[2]
        assert wait_for_job(url, first).get_status() == JobStatus.FINISHED

        own_redis.stop()
        own_redis = start_redis(port, tmp_path / "redis")
        second = tracetune("export", project_title, env=env, cwd=tmp_path).stdout.split()[2]
        assert wait_for_job(url, second, timeout_s=120).get_status() == JobStatus.FINISHED

        assert (
            Job.fetch(first, connection=redis.Redis.from_url(url)).get_status()
            == JobStatus.FINISHED
        )
        exports = tracetune("jobs", "--json", env=env, cwd=tmp_path).stdout.splitlines()
        assert sorted(json.loads(row)["id"] for row in exports) == sorted([first, second])
    finally:
        own_redis.stop()
