"""The sync against the real Label Studio and Redis: idempotent, incremental, crash-safe."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk import LabelStudio
from sync_helpers import qa_run, write_jsonl

from tracetune.sync.ingest.state import SyncStore
from tracetune.sync.ingest.syncer import run_sync
from tracetune.sync.label_config import kind_of_config
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.langsmith.file_source import RunFileSource
from tracetune.sync.redis_client import redis_client
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import LabelStudioServer

pytestmark = pytest.mark.integration


def _settings(server: LabelStudioServer, redis_url: str) -> Settings:
    return Settings(
        label_studio_url=server.url,
        label_studio_api_key=server.token,  # type: ignore[arg-type]
        redis_url=redis_url,
    )


def _run_ids(client: LabelStudio, project_id: int) -> list[str]:
    return [t.data["run_id"] for t in client.tasks.list(project=project_id, page_size=500)]


def test_first_sync_imports_every_run_and_a_second_imports_nothing(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
) -> None:
    runs = [qa_run(i) for i in range(30)]
    source = RunFileSource(write_jsonl(tmp_path / "runs.jsonl", runs))
    settings = _settings(label_studio_server, redis_url)
    store = SyncStore(redis_client(redis_url), settings.label_studio_url)

    first = run_sync(source, LabelStudioGateway(settings), project_title, state=store)

    assert (first.fetched, first.imported, first.already_present) == (30, 30, 0)
    assert first.kind is ReviewKind.CHAT
    project = label_studio.projects.get(id=first.project_id)
    assert project.title == project_title
    assert kind_of_config(project.label_config) is ReviewKind.CHAT
    assert sorted(_run_ids(label_studio, project.id)) == sorted(r["id"] for r in runs)
    task = next(iter(label_studio.tasks.list(project=project.id, page_size=1)))
    assert task.data["dialogue"][0]["role"] == "user"
    assert task.data["answer"].startswith("Open Settings")

    second = run_sync(source, LabelStudioGateway(settings), project_title, state=store, full=True)
    assert (second.imported, second.already_present) == (0, 30)
    assert label_studio.projects.get(id=project.id).task_number == 30


def test_the_watermark_fetches_only_newer_runs(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
) -> None:
    path = tmp_path / "runs.jsonl"
    settings = _settings(label_studio_server, redis_url)
    store = SyncStore(redis_client(redis_url), settings.label_studio_url)
    write_jsonl(path, [qa_run(i * 60) for i in range(10)])  # one run per hour
    run_sync(RunFileSource(path), LabelStudioGateway(settings), project_title, state=store)

    write_jsonl(path, [qa_run(i * 60) for i in range(13)])
    report = run_sync(RunFileSource(path), LabelStudioGateway(settings), project_title, state=store)

    # The newest already-synced run is re-read (10 min look-back), older ones are not fetched.
    assert (report.fetched, report.imported, report.already_present) == (4, 3, 1)
    assert label_studio.projects.get(id=report.project_id).task_number == 13


class _CrashingGateway(LabelStudioGateway):
    """Dies right after Label Studio committed the second batch, before anything else runs."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.batches = 0

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> int:
        count = super().import_tasks(project_id, tasks)
        self.batches += 1
        if self.batches == 2:
            raise KeyboardInterrupt("simulated crash")
        return count


def test_a_crash_mid_import_resumes_without_duplicates(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
) -> None:
    runs = [qa_run(i) for i in range(50)]
    source = RunFileSource(write_jsonl(tmp_path / "runs.jsonl", runs))
    settings = _settings(label_studio_server, redis_url)
    store = SyncStore(redis_client(redis_url), settings.label_studio_url)

    with pytest.raises(KeyboardInterrupt):
        run_sync(source, _CrashingGateway(settings), project_title, state=store, batch_size=10)
    project = LabelStudioGateway(settings).find_project(project_title)
    assert label_studio.projects.get(id=project.id).task_number == 20

    report = run_sync(source, LabelStudioGateway(settings), project_title, state=store)

    assert (report.imported, report.already_present) == (30, 20)
    ids = _run_ids(label_studio, project.id)
    assert len(ids) == len(set(ids)) == 50


def test_a_sync_without_redis_still_never_duplicates(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    project_title: str,
) -> None:
    source = RunFileSource(write_jsonl(tmp_path / "runs.jsonl", [qa_run(i) for i in range(5)]))
    settings = _settings(label_studio_server, "redis://127.0.0.1:1/0")
    run_sync(source, LabelStudioGateway(settings), project_title, state=None)
    again = run_sync(source, LabelStudioGateway(settings), project_title, state=None)
    assert (again.imported, again.already_present) == (0, 5)


def test_asking_an_existing_project_for_another_kind_is_an_error(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    redis_url: str,
    project_title: str,
) -> None:
    from tracetune.sync.errors import InvalidInputError

    source = RunFileSource(write_jsonl(tmp_path / "runs.jsonl", [qa_run(0)]))
    settings = _settings(label_studio_server, redis_url)
    run_sync(source, LabelStudioGateway(settings), project_title)
    with pytest.raises(InvalidInputError, match="reviews chat_review"):
        run_sync(source, LabelStudioGateway(settings), project_title, kind=ReviewKind.RAG)
