"""The sync: source runs → tasks → one Label Studio project, incrementally and streaming.

Correctness rests on Label Studio: a task carries its run id and only runs absent from the
project are imported, batch by batch, each batch re-checked against the project's live task
count (`project_runs`), so a re-run, a run after a crash or two syncs at once leave exactly one
task per run, with Redis or without. The watermark only narrows what is fetched; the sync lock
only keeps two syncs from doing the same work. Each batch is imported in a background thread
while the next one is fetched and converted, so the sync costs little more than the import.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.ingest.lock import SyncLock
from tracetune.sync.ingest.planning import (
    NoProgress,
    PlannedTask,
    Progress,
    Tally,
    conversations,
    decide_kind,
    planned_tasks,
)
from tracetune.sync.ingest.project_runs import ProjectRuns
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
    #: Extra tasks of one run found and deleted (left by a sync that ran at the same time).
    duplicates_removed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    project_id: int | None = None
    project_url: str | None = None
    #: Whose lock this sync removed (`--break-lock`) or took over (its holder had died here).
    lock_removed: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "fetched": self.fetched,
            "imported": self.imported,
            "already_present": self.already_present,
            "duplicates_removed": self.duplicates_removed,
            "skipped": dict(self.skipped),
            "project_id": self.project_id,
            "project_url": self.project_url,
            "lock_removed": self.lock_removed,
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


class _BatchImporter:
    """One import request in flight while the caller prepares the next batch.

    Unless the sync holds the project's lock, each batch is checked against what the project
    holds right before it is imported, in the import thread, so the check and the import are
    never separated by another batch.
    """

    def __init__(
        self, gateway: LabelStudioGateway, runs: ProjectRuns, alone: Callable[[], bool]
    ) -> None:
        self.gateway, self.runs, self.alone = gateway, runs, alone
        self.imported = 0
        self.already_present = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ls-import")
        self._pending: Future[None] | None = None

    def _new(self, batch: list[PlannedTask]) -> list[PlannedTask]:
        return [t for t in batch if t.run_id not in self.runs.run_ids]

    def _import(self, batch: list[PlannedTask]) -> None:
        new = self._new(batch)
        if new and not self.alone():
            self.runs.check()
            new = self._new(new)
        self.already_present += len(batch) - len(new)
        if new:
            count = self.gateway.import_tasks(self.runs.project_id, [t.data for t in new])
            self.imported += count
            self.runs.record([t.run_id for t in new], count)

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


@contextmanager
def _sync_lock(
    state: SyncStore | None, project_title: str, ttl_s: float, break_lock: bool
) -> Iterator[tuple[SyncLock | None, str | None]]:
    """Hold the project's lock (with Redis) for the block; yields it and whose lock went."""
    if state is None:
        yield None, None
        return
    removed = state.break_lock(project_title) if break_lock else None
    lock = state.lock(project_title, ttl_s)
    lock.acquire()
    if lock.replaced is not None:
        removed = f"{lock.replaced.describe()}, whose process is gone"
    try:
        yield lock, removed
    finally:
        lock.release()


def _ready_project(
    gateway: LabelStudioGateway, title: str, config: str, state: SyncStore | None
) -> tuple[Any, ProjectSyncState | None, ProjectRuns]:
    """The project, made sure of, with its sync state and the runs it holds."""
    project = gateway.ensure_project(title, config, "Runs synced from LangSmith")
    project_state = state.for_project(project.id) if state is not None else None
    return project, project_state, ProjectRuns.read(gateway, project.id, project_state)


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
    lock_ttl_s: float = 30.0,
    break_lock: bool = False,
) -> SyncReport:
    """Sync new runs of `source` into the project titled `project_title`.

    With Redis (`state`), the project's sync lock is held from before the project is looked up
    (so two syncs never create it twice) to the end; `break_lock` removes a holder's lock first.
    """
    progress = progress or NoProgress()
    gateway.check()
    with _sync_lock(state, project_title, lock_ttl_s, break_lock) as (lock, lock_removed):
        alone = (lambda: lock.held) if lock is not None else (lambda: False)
        report = _sync(source, gateway, project_title, state, kind, batch_size, lookback,
                       full, progress, max_chars, alone)  # fmt: skip
    report.lock_removed = lock_removed
    return report


def _sync(
    source: RunSource,
    gateway: LabelStudioGateway,
    project_title: str,
    state: SyncStore | None,
    kind: ReviewKind | None,
    batch_size: int,
    lookback: timedelta,
    full: bool,
    progress: Progress,
    max_chars: int,
    alone: Callable[[], bool],
) -> SyncReport:
    """`run_sync` once the lock is held: plan, make sure of the project, import.

    `alone` says whether this sync still holds the project's lock; while it does, no other
    sync writes, and the live count is checked once, after the last import, not per batch.
    """
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
    batches = _batches(itertools.chain([first] if first is not None else [], tasks), batch_size)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ls-project") as pool:
        # Label Studio makes the project ready while the rest of the first batch is converted:
        # its requests mostly wait on the server, the conversion is this process's own work.
        ready = pool.submit(_ready_project, gateway, project_title, config, state)
        first_batch = next(batches, None)
        project, project_state, runs = ready.result()
    report = SyncReport(kind, project_id=project.id, project_url=gateway.project_url(project.id))

    importer = _BatchImporter(gateway, runs, alone)
    try:
        for batch in itertools.chain([first_batch] if first_batch else [], batches):
            importer.submit(batch)
    finally:
        importer.close()
    if importer.imported:
        runs.check()  # after the last import: another sync's copies are seen and removed here
    report.imported, report.already_present = importer.imported, importer.already_present
    report.duplicates_removed = runs.duplicates_removed
    if project_state is not None and tally.next_watermark is not None:
        project_state.set_watermark(source.key, tally.next_watermark)
    ensure_review_tabs(gateway, project.id, config)
    report.fetched, report.skipped = tally.fetched, tally.skipped
    return report
