"""The sync: source runs → conversations → tasks → one Label Studio project, incrementally.

Correctness rests on Label Studio: a task carries its run id and only runs absent from the
project are imported, batch by batch, so a re-run or a run after a crash imports exactly what
is missing. The watermark only narrows what is fetched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from tracetune.sync.conversation import Conversation
from tracetune.sync.errors import InvalidInputError, ServiceUnavailableError
from tracetune.sync.from_langsmith import MAX_TEXT_CHARS, Skip, convert_run
from tracetune.sync.label_config import (
    check_config,
    flag_choices,
    kind_of_config,
    render_label_config,
)
from tracetune.sync.label_studio import LabelStudioGateway
from tracetune.sync.pairing import pair_conversations
from tracetune.sync.review_kinds import DEFAULT_FLAGS, ReviewKind
from tracetune.sync.sources import RunSource, SourceRun
from tracetune.sync.sync_state import ProjectSyncState, SyncStore
from tracetune.sync.task_data import conversation_task, pair_task

#: Runs can be ingested after a later run was already synced; re-read this much overlap.
DEFAULT_LOOKBACK = timedelta(minutes=10)


class Progress(Protocol):
    """What the sync reports while it works (the CLI draws a progress bar from it)."""

    def stage(self, name: str, total: int | None) -> None: ...

    def advance(self, count: int) -> None: ...


class NoProgress:
    def stage(self, name: str, total: int | None) -> None:
        return None

    def advance(self, count: int) -> None:
        return None


@dataclass
class PlannedTask:
    run_id: str
    data: dict[str, Any]


@dataclass
class SyncPlan:
    """What a sync would import, before Label Studio is touched (also the `--dry-run`)."""

    kind: ReviewKind
    tasks: list[PlannedTask]
    skips: list[Skip]
    fetched: int
    next_watermark: datetime | None


@dataclass
class SyncReport:
    kind: ReviewKind
    fetched: int
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


def choose_kind(conversations: list[Conversation]) -> ReviewKind:
    """Preference pairs for experiments, RAG review when most runs carry context, else chat."""
    if not conversations:
        return ReviewKind.CHAT
    experiment_projects = {c.project for c in conversations if c.reference_example_id}
    if len(experiment_projects) >= 2:
        return ReviewKind.PREFERENCE
    with_context = sum(1 for c in conversations if c.context_docs)
    return ReviewKind.RAG if with_context * 2 > len(conversations) else ReviewKind.CHAT


def _naive(value: datetime) -> datetime:
    return value.astimezone().replace(tzinfo=None) if value.tzinfo else value


def _start(run: dict[str, Any]) -> datetime | None:
    raw = run.get("start_time")
    try:
        return _naive(datetime.fromisoformat(str(raw).replace("Z", "+00:00"))) if raw else None
    except ValueError:
        return None


def _collect(
    items: Iterable[SourceRun | Skip], progress: Progress, max_chars: int
) -> tuple[list[Conversation], list[Skip], int, datetime | None]:
    conversations: dict[str, Conversation] = {}
    skips: list[Skip] = []
    fetched = 0
    newest: datetime | None = None
    oldest_open: datetime | None = None
    for item in items:
        fetched += 1
        progress.advance(1)
        if isinstance(item, Skip):
            skips.append(item)
            continue
        result = convert_run(item.run, item.feedback, item.project, max_chars=max_chars)
        started = _start(item.run)
        if started is not None:
            newest = max(newest, started) if newest else started
            if isinstance(result, Skip) and result.reason == "run still in progress":
                oldest_open = min(oldest_open, started) if oldest_open else started
        if isinstance(result, Skip):
            skips.append(result)
        elif result.run_id in conversations:
            skips.append(Skip(result.run_id, "duplicate run in source"))
        else:
            conversations[result.run_id] = result
    watermark = oldest_open or newest
    return list(conversations.values()), skips, fetched, watermark


def plan_sync(
    source: RunSource,
    since: datetime | None,
    kind: ReviewKind | None = None,
    progress: Progress | None = None,
    max_chars: int = MAX_TEXT_CHARS,
) -> SyncPlan:
    """Fetch and convert; decide the review kind and every task's data."""
    progress = progress or NoProgress()
    progress.stage("fetching runs", None)
    conversations, skips, fetched, watermark = _collect(source.fetch(since), progress, max_chars)
    chosen = kind or choose_kind(conversations)
    tasks: list[PlannedTask] = []
    if chosen is ReviewKind.PREFERENCE:
        pairs, pair_skips = pair_conversations(conversations)
        skips.extend(pair_skips)
        for a, b in pairs:
            data = pair_task(a, b)
            tasks.append(PlannedTask(data["run_id"], data))
    else:
        for conversation in conversations:
            if chosen is ReviewKind.RAG and not conversation.context_docs:
                skips.append(Skip(conversation.run_id, "rag: run has no retrieved context"))
                continue
            tasks.append(PlannedTask(conversation.run_id, conversation_task(conversation, chosen)))
    return SyncPlan(chosen, tasks, skips, fetched, watermark)


def _batches(items: list[PlannedTask], size: int) -> Iterator[list[PlannedTask]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
    plan = plan_sync(source, since, kind, progress, max_chars)
    flags = list(DEFAULT_FLAGS)
    if existing_project is not None:
        flags += flag_choices(existing_project.label_config)
    config = render_label_config(plan.kind, flags)
    if plan.tasks:
        check_config(config, plan.tasks[0].data)
    project = gateway.ensure_project(project_title, config, "Runs synced from LangSmith")
    report = SyncReport(plan.kind, plan.fetched, skipped=Counter(s.reason for s in plan.skips))
    report.project_id, report.project_url = project.id, gateway.project_url(project.id)
    project_state = state.for_project(project.id) if state is not None else None
    lock = project_state.lock() if project_state is not None else None
    if lock is not None and not lock.acquire():
        raise ServiceUnavailableError(f"another sync into {project_title!r} is running")
    try:
        existing = _existing_run_ids(gateway, project_state, project.id)
        new = [t for t in plan.tasks if t.run_id not in existing]
        report.already_present = len(plan.tasks) - len(new)
        progress.stage("importing tasks", len(new))
        for batch in _batches(new, batch_size):
            report.imported += gateway.import_tasks(project.id, [t.data for t in batch])
            if project_state is not None:
                project_state.add_run_ids(t.run_id for t in batch)
            progress.advance(len(batch))
        if project_state is not None and plan.next_watermark is not None:
            project_state.set_watermark(source.key, plan.next_watermark)
    finally:
        if lock is not None:
            lock.release()
    return report
