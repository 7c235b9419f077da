"""`tracetune sync` and `tracetune config`: LangSmith runs into a Label Studio project."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tracetune.sync.cli.progress import RichProgress
from tracetune.sync.errors import InvalidInputError, ServiceUnavailableError
from tracetune.sync.ingest.state import SyncStore
from tracetune.sync.ingest.syncer import SyncPlan, SyncReport, plan_sync, run_sync
from tracetune.sync.label_config import render_label_config
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.langsmith.api_source import LangSmithApiSource, RunSelection
from tracetune.sync.langsmith.client import langsmith_errors, make_client
from tracetune.sync.langsmith.dataset_source import DatasetSource
from tracetune.sync.langsmith.file_source import RunFileSource, RunFilters
from tracetune.sync.langsmith.sources import BUNDLED_SAMPLE, RunSource
from tracetune.sync.redis_client import redis_client
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.settings import Settings

_err = Console(stderr=True, soft_wrap=True)  # one message, one line, whatever the width

SYNC_HELP = """Import LangSmith runs into a Label Studio project as review tasks.

Runs already in the project (by run id) are never imported again, so re-running is safe,
also after a crash or beside another sync, with Redis or without. With Redis reachable
(REDIS_URL) a watermark makes the next sync fetch only newer runs, and a lock keeps a second
sync of the project from starting (exit 7, naming the holder; --break-lock removes it).
Selection flags apply to files and the bundled sample as to LangSmith, except --filter.

Examples:

  tracetune sync --project "Docs QA review"                      # bundled sample traces

  tracetune sync -p "Docs QA review" --langsmith-project docs-qa --since 2026-11-01

  tracetune sync -p "Thumbs up" --langsmith-project docs-qa --feedback-key user_score \\
      --feedback-min 1

  tracetune sync -p "Docs QA review" --file runs.jsonl --dry-run --json | head
"""


class ErrorSelection(StrEnum):
    exclude = "exclude"
    include = "include"
    only = "only"


def _parse_metadata(pairs: list[str]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--metadata takes KEY=VALUE, got {pair!r}")
        metadata[key] = value
    return metadata


def _given_flags(selection: RunSelection) -> list[str]:
    """The selection flags the user set (differing from their defaults)."""
    given = {
        "--run-type": selection.run_type is not None,
        "--all-runs": not selection.root_only,
        "--since": selection.start_time is not None,
        "--until": selection.end_time is not None,
        "--errors": selection.error is not False,
        "--tag": bool(selection.tags),
        "--metadata": bool(selection.metadata),
        "--feedback-key": selection.feedback_key is not None,
        "--feedback-min": selection.feedback_min_score is not None,
        "--filter": selection.filter is not None,
        "--limit": selection.limit is not None,
    }
    return [flag for flag, set_ in given.items() if set_]


def _file_source(path: Path, feedback: Path | None, selection: RunSelection) -> RunFileSource:
    """A file (or the bundled sample) read with every selection flag the API has but --filter."""
    if selection.filter is not None:
        raise InvalidInputError(
            "--filter is LangSmith's own query language and applies to --langsmith-project "
            "only; select a file's runs with --since/--until/--tag/--metadata/--feedback-key"
        )
    filters = RunFilters(
        start_time=selection.start_time,
        end_time=selection.end_time,
        errors_only=selection.error is True,
        tags=tuple(selection.tags),
        metadata=selection.metadata,
        feedback_key=selection.feedback_key,
        feedback_min_score=selection.feedback_min_score,
        limit=selection.limit,
    )
    return RunFileSource(path, feedback, selection.run_type, selection.root_only, filters)


def _source(
    settings: Settings,
    file: Path | None,
    feedback_file: Path | None,
    langsmith_projects: list[str],
    dataset: str | None,
    selection: RunSelection,
) -> RunSource:
    chosen = [bool(file), bool(langsmith_projects), bool(dataset)]
    if sum(chosen) > 1:
        raise InvalidInputError("choose one source: --file, --langsmith-project or --dataset")
    if selection.feedback_min_score is not None and selection.feedback_key is None:
        raise InvalidInputError("--feedback-min needs --feedback-key: which feedback to compare")
    if file is not None:
        return _file_source(file, feedback_file, selection)
    if langsmith_projects:
        return LangSmithApiSource(make_client(settings), selection)
    if dataset:
        if given := _given_flags(selection):
            verb = "selects" if len(given) == 1 else "select"
            raise InvalidInputError(
                f"{', '.join(given)} {verb} runs; --dataset reads every example of the dataset"
            )
        return DatasetSource(make_client(settings), dataset)
    _err.print(f"no source given: using the bundled sample traces ({BUNDLED_SAMPLE.name})")
    feedback = BUNDLED_SAMPLE.with_name("sample_feedback.jsonl")
    return _file_source(BUNDLED_SAMPLE, feedback, selection)


def _sync_store(settings: Settings) -> SyncStore | None:
    try:
        return SyncStore(redis_client(settings.redis_url), settings.label_studio_url)
    except ServiceUnavailableError as exc:
        _err.print(f"[yellow]warning:[/] {exc}; syncing without a watermark (full listing)")
        return None


def _print_plan_json(plan: SyncPlan) -> None:
    for task in plan.tasks:
        line = {"run_id": task.run_id, "kind": plan.kind.value, "data": task.data}
        sys.stdout.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
    for skip in plan.tally.skips:
        sys.stdout.write(json.dumps({"run_id": skip.run_id, "skip": skip.reason}) + "\n")


def _print_summary(title: str, rows: list[tuple[str, Any]]) -> None:
    """Plain aligned lines: readable in a terminal, intact when piped (no truncated URLs)."""
    width = max(len(name) for name, _ in rows)
    lines = [title] + [f"  {name.ljust(width)}  {value}" for name, value in rows]
    sys.stdout.write("\n".join(lines) + "\n")


def _print_plan(plan: SyncPlan) -> None:
    rows: list[tuple[str, Any]] = [
        ("review kind", plan.kind.value),
        ("fetched", plan.tally.fetched),
        ("would import (before checking the project)", len(plan.tasks)),
    ]
    rows += [(f"skipped: {reason}", n) for reason, n in plan.tally.skipped.most_common()]
    _print_summary("Dry run: nothing was written", rows)


def _print_report(report: SyncReport) -> None:
    rows: list[tuple[str, Any]] = [
        ("review kind", report.kind.value),
        ("fetched", report.fetched),
        ("imported", report.imported),
        ("already present", report.already_present),
    ]
    if report.duplicates_removed:
        rows.append(("duplicates removed", report.duplicates_removed))
    rows += [(f"skipped: {reason}", n) for reason, n in report.skipped.most_common()]
    rows.append(("project", report.project_url))
    _print_summary("Sync finished", rows)


def sync(
    project: Annotated[
        str, typer.Option("--project", "-p", help="Label Studio project title (created if new).")
    ] = "tracetune review",
    file: Annotated[
        Path | None, typer.Option(help="Exported JSONL of runs as the SDK returns them.")
    ] = None,
    feedback_file: Annotated[
        Path | None, typer.Option(help="JSONL of LangSmith feedback records for --file.")
    ] = None,
    langsmith_project: Annotated[
        list[str] | None,
        typer.Option("--langsmith-project", "-l", help="LangSmith project to read (repeatable)."),
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="LangSmith dataset to read.")] = None,
    kind: Annotated[
        ReviewKind | None, typer.Option(help="Review kind; default: chosen from the runs.")
    ] = None,
    run_type: Annotated[str | None, typer.Option(help="llm, chain, tool, retriever...")] = None,
    all_runs: Annotated[bool, typer.Option(help="Also child runs, not only roots.")] = False,
    since: Annotated[datetime | None, typer.Option(help="Runs started at or after.")] = None,
    until: Annotated[datetime | None, typer.Option(help="Runs started before.")] = None,
    errors: Annotated[
        ErrorSelection, typer.Option(help="Runs that errored: exclude, include or only.")
    ] = ErrorSelection.exclude,
    tag: Annotated[list[str] | None, typer.Option(help="Runs with this tag (repeatable).")] = None,
    metadata: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE run metadata (repeatable).")
    ] = None,
    feedback_key: Annotated[str | None, typer.Option(help="Runs with this feedback key.")] = None,
    feedback_min: Annotated[
        float | None, typer.Option(help="... and a feedback score at least this.")
    ] = None,
    filter_query: Annotated[
        str | None, typer.Option("--filter", help="LangSmith filter query, e.g. 'gt(latency, 5)'.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Read at most this many runs.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would be imported; write nothing.")] = (
        False
    ),
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable output (one JSON line per run).")
    ] = False,
    full: Annotated[bool, typer.Option(help="Ignore the watermark and read every run.")] = False,
    lookback_minutes: Annotated[
        float, typer.Option(min=0, help="Re-read this much before the watermark.")
    ] = 10.0,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Tasks per import request (default 2000).")
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(min=0.1, help="Keep running: sync again every this many minutes."),
    ] = None,
    break_lock: Annotated[
        bool,
        typer.Option(help="Remove the project's sync lock first (its holder may still run)."),
    ] = False,
) -> None:
    settings = Settings()
    selection = RunSelection(
        projects=langsmith_project or [],
        run_type=run_type,
        root_only=not all_runs,
        start_time=since,
        end_time=until,
        error={"exclude": False, "include": None, "only": True}[errors.value],
        tags=tag or [],
        metadata=_parse_metadata(metadata or []),
        feedback_key=feedback_key,
        feedback_min_score=feedback_min,
        filter=filter_query,
        limit=limit,
    )
    if every is not None and dry_run:
        raise InvalidInputError("--every and --dry-run do not go together")
    with langsmith_errors(settings.langsmith_endpoint):
        source = _source(settings, file, feedback_file, langsmith_project or [], dataset, selection)
        if dry_run:
            plan = plan_sync(source, since=None, kind=kind)
            _print_plan_json(plan) if as_json else _print_plan(plan)
            return
        gateway = LabelStudioGateway(settings)
        state = _sync_store(settings)
        if break_lock and state is None:
            _err.print("[yellow]warning:[/] without Redis there is no sync lock to break")
        while True:
            with RichProgress(enabled=not as_json) as progress:
                report = run_sync(
                    source,
                    gateway,
                    project,
                    state=state,
                    kind=kind,
                    batch_size=batch_size or settings.import_batch_size,
                    lookback=timedelta(minutes=lookback_minutes),
                    full=full,
                    progress=progress,
                    lock_ttl_s=settings.tracetune_sync_lock_ttl_s,
                    break_lock=break_lock,
                )
            break_lock = False  # once: later rounds of --every respect the lock again
            if report.lock_removed:
                _err.print(f"[yellow]removed the sync lock of[/] {report.lock_removed}")
            if as_json:
                sys.stdout.write(json.dumps(report.as_dict()) + "\n")
            else:
                _print_report(report)
            if every is None:
                return
            _err.print(f"next sync in {every:g} min")
            time.sleep(every * 60)


config_app = typer.Typer(help="Label Studio configs generated for each review kind.")


@config_app.command("show")
def config_show(kind: ReviewKind) -> None:
    """Print the label config of a review kind, e.g. `tracetune config show chat_review`."""
    sys.stdout.write(render_label_config(kind))


def register(app: typer.Typer) -> None:
    app.command(help=SYNC_HELP)(sync)
    app.add_typer(config_app, name="config")
