"""`tracetune export`: a project's reviews → fine-tuning files (queued, or `--now`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from tracetune.sync.cli.output import out, out_json
from tracetune.sync.errors import ServiceUnavailableError
from tracetune.sync.export.filters import PiiPolicy, parse_max_scores
from tracetune.sync.settings import Settings

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


class Format(StrEnum):
    openai = "openai"
    trl = "trl"


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
    from tracetune.sync.worker.jobs import enqueue_export, export_request_from, record_export

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
            out_json({"queued": job.id})
        else:
            out(f"queued export {job.id} of {project!r}: `tracetune jobs` shows its progress")
        return
    from tracetune.sync.export.run import run_export

    result = run_export(settings, request)
    try:
        record_export(settings, result)
    except ServiceUnavailableError as exc:
        out(f"note: export not recorded in Redis ({exc})")
    if as_json:
        out_json(result.manifest | {"path": result.path})
        return
    _print_export(result.manifest, result.path)


def _print_export(manifest: dict[str, Any], path: Path) -> None:
    counts = manifest["counts"]
    out(f"export {manifest['export_id']} of {manifest['project']['title']!r} → {path}")
    out(
        f"  tasks: {counts['tasks']}  "
        + "  ".join(f"{k} {v}" for k, v in counts["by_decision"].items())
    )
    excluded = counts["excluded_by_reason"]
    if excluded:
        out("  excluded: " + "  ".join(f"{k} {v}" for k, v in excluded.items()))
    out("  rule: " + "  ".join(f"{k} {v}" for k, v in counts["by_rule"].items()))
    out("  examples: " + "  ".join(f"{k} {v}" for k, v in manifest["examples"].items()))
    tokens = manifest["tokens"]
    out(f"  tokens ({tokens['method']}, limit {tokens['limit_per_example']}):")
    for name, stats in tokens.items():
        if isinstance(stats, dict) and stats.get("examples"):
            out(f"    {name}: total {stats['total']}, mean {stats['mean']}, max {stats['max']}")
    out("  files:")
    for name, info in manifest["files"].items():
        out(f"    {name}  {info['rows']} rows  {info['bytes']} B  sha256 {info['sha256'][:12]}")
    for report in manifest["validation"].values():
        out(("  ok: " if report["ok"] else "  INVALID: ") + report["summary"])


def register(app: typer.Typer) -> None:
    app.command(help=EXPORT_HELP)(export)
