"""Syncs racing and dying, on the real Label Studio and Redis (issue 10, cases 1, 2 and 4).

Each test runs `tracetune sync` as a user does (its own process) and then counts what Label
Studio holds: exactly one task per run id, in exactly one project, whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk import LabelStudio
from sync_helpers import cli_env, qa_run, write_jsonl

from tracetune.sync.ingest.syncer import run_sync
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.langsmith.file_source import RunFileSource
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import LabelStudioServer, free_port

pytestmark = pytest.mark.integration

TRACETUNE = str(Path(sys.executable).with_name("tracetune"))


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TRACETUNE, "sync", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _finish(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any] | None, str]:
    out, err = process.communicate(timeout=300)
    report = json.loads(out.splitlines()[-1]) if out.strip() else None
    return process.returncode, report, err


def _projects(client: LabelStudio, title: str) -> list[Any]:
    return [p for p in client.projects.list(title=title) if p.title == title]


def _run_ids(client: LabelStudio, project_id: int) -> Counter[str]:
    tasks = client.tasks.list(
        project=project_id, page_size=1000, fields="task_only", include="id,data"
    )
    return Counter(str(t.data["run_id"]) for t in tasks)


def _task_count(client: LabelStudio, title: str) -> int:
    found = _projects(client, title)
    return int(found[0].task_number or 0) if found else 0


def _runs(tmp_path: Path, count: int) -> Path:
    return write_jsonl(tmp_path / "runs.jsonl", [qa_run(i) for i in range(count)])


def _exactly_once(client: LabelStudio, title: str, count: int) -> None:
    (project,) = _projects(client, title)
    ids = _run_ids(client, project.id)
    assert len(ids) == count
    assert [run for run, n in ids.items() if n > 1] == []


def test_two_syncs_at_once_without_redis_leave_one_task_per_run(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    project_title: str,
) -> None:
    env = cli_env(
        label_studio_server.url, label_studio_server.token, f"redis://127.0.0.1:{free_port()}/0"
    )
    path = _runs(tmp_path, 1500)
    args = ("-p", project_title, "--file", str(path), "--batch-size", "100", "--json")
    first, second = _start(env, *args), _start(env, *args)
    results = [_finish(first), _finish(second)]

    for code, _, err in results:
        assert code == 0, err
        assert "syncing without a watermark" in err
    _exactly_once(label_studio, project_title, 1500)  # one project, though both created it
    reports = [r for _, r, _ in results if r is not None]
    created = sum(r["imported"] for r in reports)
    assert created >= 1500
    # Every extra copy was removed by one sync or the other (both may count one they raced on).
    assert sum(r["duplicates_removed"] for r in reports) >= created - 1500


def test_a_second_sync_is_refused_with_the_holder_and_break_lock_lets_it_run(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
) -> None:
    env = cli_env(label_studio_server.url, label_studio_server.token, redis_url)
    path = _runs(tmp_path, 3000)
    # Small batches keep the holder importing for seconds after its first task appears, longer
    # than the second sync takes to start, however fast each import is.
    args = ("-p", project_title, "--file", str(path), "--batch-size", "25", "--json")
    holder = _start(env, *args)
    deadline = time.monotonic() + 120
    while _task_count(label_studio, project_title) == 0:
        assert time.monotonic() < deadline and holder.poll() is None
        time.sleep(0.2)

    refused = subprocess.run(
        [TRACETUNE, "sync", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 7
    assert f"another sync into {project_title!r} is running" in refused.stderr
    assert f"(pid {holder.pid}) since" in refused.stderr

    breaker = _start(env, *args, "--break-lock")
    for code, _, err in (_finish(holder), _finish(breaker)):
        assert code == 0, err
    _exactly_once(label_studio, project_title, 3000)


def test_a_sync_killed_mid_import_is_resumed_at_once_without_duplicates(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
) -> None:
    env = cli_env(label_studio_server.url, label_studio_server.token, redis_url)
    path = _runs(tmp_path, 5000)
    args = ("-p", project_title, "--file", str(path), "--batch-size", "100", "--json")
    for kill_at in (1000, 3000):
        victim = _start(env, *args)
        deadline = time.monotonic() + 120
        while _task_count(label_studio, project_title) < kill_at:
            assert time.monotonic() < deadline and victim.poll() is None
            time.sleep(0.1)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()

    code, report, err = _finish(_start(env, *args))  # at once: no hour-long stale lock
    assert code == 0, err
    assert "removed the sync lock of" in err and "whose process is gone" in err
    assert report is not None
    assert report["imported"] + report["already_present"] == 5000
    _exactly_once(label_studio, project_title, 5000)


def test_duplicates_left_in_a_project_are_removed_keeping_the_reviewed_copy(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    project_title: str,
) -> None:
    """What two racing syncs of an older tracetune (or a crash mid-race) leave behind."""
    runs = [qa_run(i) for i in range(6)]
    path = write_jsonl(tmp_path / "runs.jsonl", runs)
    settings = Settings(
        label_studio_url=label_studio_server.url,
        label_studio_api_key=label_studio_server.token,  # type: ignore[arg-type]
    )
    gateway = LabelStudioGateway(settings)
    first = run_sync(RunFileSource(path), gateway, project_title)
    assert first.project_id is not None
    tasks = {t.data["run_id"]: t.id for t in label_studio.tasks.list(project=first.project_id)}
    copies = [{"data": t.data} for t in label_studio.tasks.list(project=first.project_id)][:3]
    label_studio.projects.import_tasks(id=first.project_id, request=copies)
    newest = max(t.id for t in label_studio.tasks.list(project=first.project_id))
    label_studio.annotations.create(id=newest, result=[])  # a reviewer got to one copy first

    again = run_sync(RunFileSource(path), gateway, project_title)

    assert (again.imported, again.already_present, again.duplicates_removed) == (0, 6, 3)
    left = {t.id for t in label_studio.tasks.list(project=first.project_id)}
    assert newest in left and len(left) == 6
    _exactly_once(label_studio, project_title, 6)
    assert len(left & set(tasks.values())) == 5


def test_a_binary_file_fails_in_one_line_and_creates_no_project(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_bytes(os.urandom(20_000))
    env = cli_env(label_studio_server.url, label_studio_server.token, redis_url)
    result = subprocess.run(
        [TRACETUNE, "sync", "-p", project_title, "--file", str(path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 6
    assert "holds no LangSmith run" in result.stderr and "Traceback" not in result.stderr
    assert _projects(label_studio, project_title) == []
