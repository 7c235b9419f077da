"""`tracetune worker`, `export`, `finetune` and `jobs`: the worker side of the command line."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from tracetune.sync.errors import InvalidInputError, ServiceUnavailableError
from tracetune.sync.export_filters import PiiPolicy, parse_max_scores
from tracetune.sync.finetune_providers import provider_for
from tracetune.sync.job_records import ExportRecord, FineTuneRecord, JobRecords
from tracetune.sync.settings import Settings
from tracetune.sync.sync_state import redis_client

EXPORT_HELP = """Turn a Label Studio project's reviews into fine-tuning files and a manifest.

Accepted answers become SFT examples; edited ones an SFT example on the correction and a
preference pair; preference tasks become pairs; rejected, skipped and unreviewed tasks are
left out (a rejected answer is kept as the rejected side of a pair when a better answer to the
same input exists). Without --now the export is queued for `tracetune worker`.

Examples:

  tracetune export "Docs QA review" --now

  tracetune export 12 --dedupe --max-score toxicity=0.5 --feedback "user_score>=1"

  tracetune export "Docs QA review" --pii drop --format openai --validation 0.2 --now --json
"""

FINETUNE_START_HELP = """Start a fine-tuning job on an export (default: the newest one).

Examples:

  tracetune finetune start --provider openai --model gpt-4o-mini-2024-07-18 --suffix docs-qa

  tracetune finetune start --provider openai --method dpo --param beta=0.2

  tracetune finetune start --provider local --model ./models/tiny --param max_steps=20 --now
"""


class Format(StrEnum):
    openai = "openai"
    trl = "trl"


class Method(StrEnum):
    sft = "sft"
    dpo = "dpo"


class Provider(StrEnum):
    openai = "openai"
    local = "local"


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, default=str) + "\n")


def worker(
    burst: Annotated[
        bool, typer.Option(help="Stop when the queue is empty instead of waiting.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host and pid).")] = None,
) -> None:
    """Run an RQ worker for exports and fine-tuning jobs on REDIS_URL.

    Example: `REDIS_URL=redis://127.0.0.1:6379/0 tracetune worker`
    """
    from rq import Worker

    from tracetune.sync.jobs import queue

    settings = Settings()
    connection = redis_client(settings.redis_url)
    q = queue(settings, connection)
    _out(f"worker on queue {q.name!r} at {settings.redis_url}")
    sys.stdout.flush()
    Worker([q], connection=connection, name=name).work(
        burst=burst, with_scheduler=True, logging_level="INFO"
    )


def export(
    project: Annotated[str, typer.Argument(help="Label Studio project title or id.")],
    now: Annotated[bool, typer.Option(help="Run here and now instead of queueing.")] = False,
    pii: Annotated[
        PiiPolicy,
        typer.Option(
            help="Tasks flagged as PII: redact labelled spans (drop if none), drop, keep."
        ),
    ] = PiiPolicy.REDACT,
    max_score: Annotated[
        list[str] | None,
        typer.Option(help="CONCEPT=X: drop tasks whose backend score is above X (repeatable)."),
    ] = None,
    dedupe: Annotated[bool, typer.Option(help="Keep one task per near-duplicate cluster.")] = False,
    feedback: Annotated[
        list[str] | None,
        typer.Option(help="Only tasks with this LangSmith feedback: KEY or KEY>=X (repeatable)."),
    ] = None,
    file_format: Annotated[
        list[Format] | None, typer.Option("--format", help="openai and/or trl (default both).")
    ] = None,
    validation: Annotated[
        float, typer.Option(min=0, max=0.9, help="Fraction of clusters held out for validation.")
    ] = 0.1,
    seed: Annotated[str, typer.Option(help="Seed of the deterministic split.")] = "tracetune",
    model: Annotated[
        str | None, typer.Option(help="Target model: picks the tokenizer and token limit.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    from tracetune.sync.jobs import enqueue_export, export_request_from, record_export

    settings = Settings()
    options: dict[str, Any] = {
        "project": project,
        "pii": pii.value,
        "max_scores": parse_max_scores(max_score or []),
        "dedupe": dedupe,
        "feedback": list(feedback or []),
        "formats": [f.value for f in file_format] if file_format else ["openai", "trl"],
        "validation_fraction": validation,
        "seed": seed,
        "model": model or settings.tracetune_finetune_model,
    }
    request = export_request_from(options)  # refuses bad options before anything is queued
    if not now:
        job = enqueue_export(settings, options)
        if as_json:
            _json({"queued": job.id})
        else:
            _out(f"queued export {job.id} of {project!r}: `tracetune jobs` shows its progress")
        return
    from tracetune.sync.exporter import run_export

    result = run_export(settings, request)
    try:
        record_export(settings, result)
    except ServiceUnavailableError as exc:
        _out(f"note: export not recorded in Redis ({exc})")
    if as_json:
        _json({k: v for k, v in result.manifest.items() if k != "lineage"} | {"path": result.path})
        return
    _print_export(result.manifest, result.path)


def _print_export(manifest: dict[str, Any], path: Path) -> None:
    counts = manifest["counts"]
    _out(f"export {manifest['export_id']} of {manifest['project']['title']!r} → {path}")
    _out(
        f"  tasks: {counts['tasks']}  "
        + "  ".join(f"{k} {v}" for k, v in counts["by_decision"].items())
    )
    excluded = counts["excluded_by_reason"]
    if excluded:
        _out("  excluded: " + "  ".join(f"{k} {v}" for k, v in excluded.items()))
    _out("  rule: " + "  ".join(f"{k} {v}" for k, v in counts["by_rule"].items()))
    _out("  examples: " + "  ".join(f"{k} {v}" for k, v in manifest["examples"].items()))
    tokens = manifest["tokens"]
    _out(f"  tokens ({tokens['method']}, limit {tokens['limit_per_example']}):")
    for name, stats in tokens.items():
        if isinstance(stats, dict) and stats.get("examples"):
            _out(f"    {name}: total {stats['total']}, mean {stats['mean']}, max {stats['max']}")
    _out("  files:")
    for name, info in manifest["files"].items():
        _out(f"    {name}  {info['rows']} rows  {info['bytes']} B  sha256 {info['sha256'][:12]}")
    for report in manifest["validation"].values():
        _out(("  ok: " if report["ok"] else "  INVALID: ") + report["summary"])


finetune_app = typer.Typer(help="Start, follow and cancel fine-tuning jobs (openai or local).")


def _records(settings: Settings) -> JobRecords:
    return JobRecords(redis_client(settings.redis_url))


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--param takes KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


@finetune_app.command("start", help=FINETUNE_START_HELP)
def finetune_start(
    provider: Annotated[Provider, typer.Option(help="openai or local.")] = Provider.openai,
    export_id: Annotated[
        str | None, typer.Option("--export", help="Export id (default: the newest).")
    ] = None,
    method: Annotated[
        Method, typer.Option(help="sft (chat files) or dpo (preference files).")
    ] = Method.sft,
    model: Annotated[
        str | None,
        typer.Option(help="Base model: an OpenAI model name, or a local model folder."),
    ] = None,
    suffix: Annotated[str | None, typer.Option(help="Suffix of the fine-tuned model name.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs.")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="Hyperparameter KEY=VALUE, e.g. batch_size=8, beta=0.1 (repeatable)."),
    ] = None,
    now: Annotated[bool, typer.Option(help="Run the start here instead of queueing it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    from tracetune.sync.jobs import enqueue_finetune, finetune_start_job, new_finetune_record

    settings = Settings()
    records = _records(settings)
    export_record: ExportRecord = (
        records.export(export_id) if export_id else records.latest_export()
    )
    hyperparameters = _parse_params(param or [])
    if epochs is not None:
        hyperparameters["n_epochs"] = epochs
    if provider is Provider.local:
        if model is None:
            raise InvalidInputError("--model must name a local model folder for --provider local")
        if Path(model).exists():
            model = str(Path(model).resolve())  # the worker may run in another directory
    record = new_finetune_record(
        export_record,
        provider.value,
        method.value,
        model or settings.tracetune_finetune_model,
        hyperparameters,
        suffix,
    )
    records.save(record)
    if now:
        finetune_start_job(record.id)
        record = records.get(record.id)
    else:
        enqueue_finetune(settings, record, records)
    if as_json:
        _json(record.model_dump())
    else:
        _print_record(record)


def _print_record(record: FineTuneRecord) -> None:
    _out(f"{record.id}  {record.provider}/{record.method}  {record.status}  model {record.model}")
    _out(f"  export {record.export_id}: " + ", ".join(Path(p).name for p in record.files.values()))
    if record.provider_job_id:
        _out(f"  provider job {record.provider_job_id}")
    if record.fine_tuned_model:
        _out(f"  fine-tuned model: {record.fine_tuned_model}")
    if record.error:
        _out(f"  error: {record.error}")
    losses = record.metrics.get("loss") or []
    if losses:
        _out(
            f"  loss: {losses[0]['loss']:.4f} (step {losses[0]['step']}) → "
            f"{losses[-1]['loss']:.4f} (step {losses[-1]['step']})"
        )
    for event in record.events[-5:]:
        _out(f"  · {event}")
    _out(f"  created {record.created_at}  updated {record.updated_at}")


@finetune_app.command("status")
def finetune_status(
    job_id: Annotated[str, typer.Argument(help="tracetune fine-tune job id (ft-...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a job, refreshed from its provider (status, events, model id when done)."""
    settings = Settings()
    records = _records(settings)
    record = records.get(job_id)
    if not record.done:
        record = provider_for(record.provider, settings, records).refresh(record)
    _json(record.model_dump()) if as_json else _print_record(record)


@finetune_app.command("cancel")
def finetune_cancel(job_id: Annotated[str, typer.Argument(help="Fine-tune job id.")]) -> None:
    """Cancel a job at its provider (a local job stops at its next training step)."""
    settings = Settings()
    records = _records(settings)
    record = records.get(job_id)
    if record.done:
        raise InvalidInputError(f"{job_id} already {record.status}")
    record = provider_for(record.provider, settings, records).cancel(record)
    _print_record(record)


@finetune_app.command("list")
def finetune_list(
    limit: Annotated[int, typer.Option(min=1, help="Newest this many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fine-tuning jobs, newest first."""
    records = _records(Settings()).recent(limit)
    if as_json:
        for record in records:
            _json(record.model_dump())
        return
    if not records:
        _out("no fine-tuning jobs yet: `tracetune finetune start --help`")
    for record in records:
        model = record.fine_tuned_model or record.model
        _out(f"{record.id}  {record.provider}/{record.method}  {record.status:<16} {model}")


@finetune_app.command("tiny-model")
def finetune_tiny_model(
    path: Annotated[Path, typer.Argument(help="Folder to create.")],
) -> None:
    """Create a tiny random Llama + tokenizer to try `--provider local` without a download."""
    from tracetune.sync.providers_local import create_tiny_model

    _out(f"tiny model written to {create_tiny_model(path)}")


def jobs(
    limit: Annotated[int, typer.Option(min=1, help="At most this many per state.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Queued, scheduled, running, failed and finished jobs, with the reason of each failure."""
    from tracetune.sync.job_listing import list_jobs

    settings = Settings()
    rows = list_jobs(settings, limit)
    if as_json:
        for row in rows:
            _json(row)
        return
    if not rows:
        _out(f"no jobs on queue {settings.tracetune_queue!r}")
    for row in rows:
        line = f"{row['state']:<10} {row['id']:<40} {row['description']}"
        if row.get("reason"):
            line += f"  — {row['reason']}"
        _out(line)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command(help=EXPORT_HELP)(export)
    app.add_typer(finetune_app, name="finetune")
    app.command()(jobs)
