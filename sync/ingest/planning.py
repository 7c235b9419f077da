"""From source items to planned tasks, as a stream: convert, count, choose the kind, pair.

Kept apart from Label Studio so the dry run and the real sync plan tasks the same way.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tracetune.sync.conversation import Conversation
from tracetune.sync.langsmith.from_langsmith import MAX_TEXT_CHARS, Skip, convert_run
from tracetune.sync.langsmith.pairing import pair_conversations
from tracetune.sync.langsmith.sources import SourceRun
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.task_data import conversation_task, pair_task
from tracetune.sync.timestamps import naive_utc

#: Runs looked at to choose a review kind when neither `--kind` nor the project decides it.
KIND_SAMPLE = 1000
IN_PROGRESS = "run still in progress"


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
class Tally:
    """What the stream saw: counts, skip reasons, and where the next sync should start."""

    fetched: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skips: list[Skip] = field(default_factory=list)
    newest_start: datetime | None = None
    oldest_open: datetime | None = None

    def skip(self, item: Skip) -> None:
        self.skipped[item.reason] += 1
        self.skips.append(item)

    def saw(self, started: datetime | None, open_run: bool) -> None:
        if started is None:
            return
        if self.newest_start is None or started > self.newest_start:
            self.newest_start = started
        if open_run and (self.oldest_open is None or started < self.oldest_open):
            self.oldest_open = started

    @property
    def next_watermark(self) -> datetime | None:
        """Runs still in progress hold the watermark back so they are read again."""
        return self.oldest_open or self.newest_start


def _start(run: dict[str, Any]) -> datetime | None:
    raw = run.get("start_time")
    try:
        return naive_utc(datetime.fromisoformat(str(raw).replace("Z", "+00:00"))) if raw else None
    except ValueError:
        return None


def conversations(
    items: Iterable[SourceRun | Skip],
    tally: Tally,
    progress: Progress,
    max_chars: int = MAX_TEXT_CHARS,
) -> Iterator[Conversation]:
    """Convert source items one by one; skips and duplicates go into the tally.

    No run can stop the stream: what cannot be converted becomes a counted skip.
    """
    seen: set[str] = set()
    for item in items:
        tally.fetched += 1
        progress.advance(1)
        if isinstance(item, Skip):
            tally.skip(item)
            continue
        try:
            result = convert_run(item.run, item.feedback, item.project, max_chars=max_chars)
        except RecursionError:  # a run nested deeper than any source checks for
            result = Skip(str(item.run.get("id") or ""), "malformed run: nested too deep")
        tally.saw(_start(item.run), isinstance(result, Skip) and result.reason == IN_PROGRESS)
        if isinstance(result, Skip):
            tally.skip(result)
        elif result.run_id in seen:
            tally.skip(Skip(result.run_id, "duplicate run in source"))
        else:
            seen.add(result.run_id)
            yield result


def choose_kind(sample: list[Conversation]) -> ReviewKind:
    """Preference pairs for experiments, RAG review when most runs carry context, else chat."""
    if not sample:
        return ReviewKind.CHAT
    experiment_projects = {c.project for c in sample if c.reference_example_id}
    if len(experiment_projects) >= 2:
        return ReviewKind.PREFERENCE
    with_context = sum(1 for c in sample if c.context_docs)
    return ReviewKind.RAG if with_context * 2 > len(sample) else ReviewKind.CHAT


def decide_kind(
    stream: Iterator[Conversation], kind: ReviewKind | None
) -> tuple[ReviewKind, Iterator[Conversation]]:
    """The given kind, or one chosen from the first runs, with the stream left intact."""
    if kind is not None:
        return kind, stream
    sample = list(itertools.islice(stream, KIND_SAMPLE))
    return choose_kind(sample), itertools.chain(sample, stream)


def planned_tasks(
    stream: Iterator[Conversation], kind: ReviewKind, tally: Tally
) -> Iterator[PlannedTask]:
    """Tasks for a kind. Chat and RAG stream; preference pairs need every run first."""
    if kind is ReviewKind.PREFERENCE:
        pairs, pair_skips = pair_conversations(list(stream))
        for skip in pair_skips:
            tally.skip(skip)
        for a, b in pairs:
            data = pair_task(a, b)
            yield PlannedTask(data["run_id"], data)
        return
    for conversation in stream:
        if kind is ReviewKind.RAG and not conversation.context_docs:
            tally.skip(Skip(conversation.run_id, "rag: run has no retrieved context"))
            continue
        yield PlannedTask(conversation.run_id, conversation_task(conversation, kind))
