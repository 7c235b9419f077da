"""The sync: source runs → tasks → one Label Studio project, incrementally and streaming.

Correctness rests on Label Studio: a task carries its run id and only runs absent from the
project are imported, batch by batch, so a re-run or a run after a crash imports exactly what
is missing. The watermark only narrows what is fetched. Each batch is imported in a background
thread while the next one is fetched and converted, so the sync costs little more than the
import itself.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tracetune.sync.errors import InvalidInputError, ServiceUnavailableError
from tracetune.sync.ingest.planning import (
    NoProgress,
    PlannedTask,
    Progress,
    Tally,
    conversations,
    decide_kind,
    planned_tasks,
)
from tracetune.sync.ingest.state import ProjectSyncState, SyncStore
from tracetune.sync.label_config import (
    check_config,
    flag_choices,
    kind_of_config,
    render_label_config,
)
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.label_studio.views import ensure_review_tabs
from tracetune.sync.langsmith.from_langsmith import MAX_TEXT_CHARS
from tracetune.sync.langsmith.sources import RunSource
from tracetune.sync.review_kinds import DEFAULT_FLAGS, ReviewKind

#: Runs can be ingested after a later run was already synced; re-read this much overlap.
DEFAULT_LOOKBACK = timedelta(minutes=10)


@dataclass
class SyncPlan:
    """What a sync would import, before Label Studio is touched (the `--dry-run`)."""

    kind: ReviewKind
    tasks: list[PlannedTask]
    tally: Tally


@dataclass
class SyncReport:
    kind: ReviewKind
    fetched: int = 0
    imported: int = 0
    already_present: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    project_id: int | None = None
    project_url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "fetched": self.fetched,
            "imported": self.imported,
            "already_present": self.already_present,
            "skipped": dict(self.skipped),
            "project_id": self.project_id,
            "project_url": self.project_url,
        }


def plan_sync(
    source: RunSource,
    since: datetime | None,
    kind: ReviewKind | None = None,
    progress: Progress | None = None,
    max_chars: int = MAX_TEXT_CHARS,
) -> SyncPlan:
    """Fetch and convert everything; decide the review kind and every task's data."""
    progress = progress or NoProgress()
    tally = Tally()
    stream = conversations(source.fetch(since), tally, progress, max_chars)
    chosen, stream = decide_kind(stream, kind)
    return SyncPlan(chosen, list(planned_tasks(stream, chosen, tally)), tally)


def resolve_kind(gateway: LabelStudioGateway, title: str, kind: ReviewKind | None) -> Any:
    """The existing project's kind wins; asking for another kind is an error, not a rewrite."""
    project = gateway.find_project(title)
    existing = kind_of_config(project.label_config) if project is not None else None
    if existing is not None and kind is not None and existing is not kind:
        raise InvalidInputError(
            f"project {title!r} reviews {existing.value}, not {kind.value}: "
            "choose another project title"
        )
    return project, existing or kind


def _existing_run_ids(
    gateway: LabelStudioGateway, state: ProjectSyncState | None, project_id: int
) -> set[str]:
    count = gateway.task_count(project_id)
    if state is not None:
        cached = state.cached_run_ids(count)
        if cached is not None:
            return cached
    ids = gateway.run_ids(project_id) if count else set()
    if state is not None:
        state.replace_run_ids(ids)
    return ids


class _BatchImporter:
    """One import request in flight while the caller prepares the next batch."""

    def __init__(
        self,
        gateway: LabelStudioGateway,
        project_id: int,
        state: ProjectSyncState | None,
        progress: Progress,
    ) -> None:
        self.gateway, self.project_id, self.state, self.progress = (
            gateway,
            project_id,
            state,
            progress,
        )
        self.imported = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ls-import")
        self._pending: Future[None] | None = None

    def _import(self, batch: list[PlannedTask]) -> None:
        self.imported += self.gateway.import_tasks(self.project_id, [t.data for t in batch])
        if self.state is not None:
            self.state.add_run_ids(t.run_id for t in batch)
        self.progress.advance(len(batch))

    def submit(self, batch: list[PlannedTask]) -> None:
        self.wait()
        self._pending = self._pool.submit(self._import, batch)

    def wait(self) -> None:
        """Block until the batch in flight is committed; re-raise its failure here."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


def _batches(tasks: Iterator[PlannedTask], size: int) -> Iterator[list[PlannedTask]]:
    while batch := list(itertools.islice(tasks, size)):
        yield batch


def run_sync(
    source: RunSource,
    gateway: LabelStudioGateway,
    project_title: str,
    state: SyncStore | None = None,
    kind: ReviewKind | None = None,
    batch_size: int = 2000,
    lookback: timedelta = DEFAULT_LOOKBACK,
    full: bool = False,
    progress: Progress | None = None,
    max_chars: int = MAX_TEXT_CHARS,
) -> SyncReport:
    """Sync new runs of `source` into the project titled `project_title`."""
    progress = progress or NoProgress()
    gateway.check()
    existing_project, kind = resolve_kind(gateway, project_title, kind)
    since = None
    if state is not None and existing_project is not None and not full:
        watermark = state.for_project(existing_project.id).watermark(source.key)
        since = watermark - lookback if watermark else None

    progress.stage("syncing runs", None)
    tally = Tally()
    stream = conversations(source.fetch(since), tally, progress, max_chars)
    kind, stream = decide_kind(stream, kind)
    tasks = planned_tasks(stream, kind, tally)
    first = next(tasks, None)

    flags = list(DEFAULT_FLAGS)
    if existing_project is not None:
        flags += flag_choices(existing_project.label_config)
    config = render_label_config(kind, flags)
    if first is not None:
        check_config(config, first.data)
    project = gateway.ensure_project(project_title, config, "Runs synced from LangSmith")
    report = SyncReport(kind, project_id=project.id, project_url=gateway.project_url(project.id))

    project_state = state.for_project(project.id) if state is not None else None
    lock = project_state.lock() if project_state is not None else None
    if lock is not None and not lock.acquire():
        raise ServiceUnavailableError(f"another sync into {project_title!r} is running")
    try:
        seen = _existing_run_ids(gateway, project_state, project.id)
        importer = _BatchImporter(gateway, project.id, project_state, NoProgress())
        try:
            remaining = itertools.chain([first] if first is not None else [], tasks)
            for batch in _batches(remaining, batch_size):
                new = [t for t in batch if t.run_id not in seen]
                seen.update(t.run_id for t in new)
                report.already_present += len(batch) - len(new)
                if new:
                    importer.submit(new)
        finally:
            importer.close()
        report.imported = importer.imported
        if project_state is not None and tally.next_watermark is not None:
            project_state.set_watermark(source.key, tally.next_watermark)
    finally:
        if lock is not None:
            lock.release()
    ensure_review_tabs(gateway, project.id)
    report.fetched, report.skipped = tally.fetched, tally.skipped
    return report
