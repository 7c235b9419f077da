"""`tracetune finetune start | status | cancel | list | tiny-model`.

`--provider` offers what the provider registry knows (`tracetune.sync.finetune.registry`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from tracetune.sync.cli.output import out, out_json
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.export.records import ExportRecord, ExportRecords
from tracetune.sync.finetune.local_trl import is_main_process
from tracetune.sync.finetune.records import FineTuneRecord, FineTuneRecords
from tracetune.sync.finetune.registry import PROVIDERS, provider_for, provider_spec
from tracetune.sync.redis_client import redis_client
from tracetune.sync.settings import Settings

FINETUNE_START_HELP = """Start a fine-tuning job on an export (default: the newest one).

Local training is the default provider: OpenAI stopped new self-serve fine-tuning jobs on
2027-01-06; `--provider openai` stays for organisations and compatible services that still
accept jobs.

Examples:

  tracetune finetune start --model ./models/tiny --param max_steps=20 --now

  tracetune finetune start --provider openai --model gpt-4o-mini-2024-07-18 --suffix docs-qa

  tracetune finetune start --provider openai --method dpo --param beta=0.2

  tracetune finetune start --provider local --model ./models/base --prepare

  accelerate launch --config_file deploy/accelerate/multi-gpu.yaml -m tracetune.sync.cli \\
    finetune train ft-...     # the prepared job, on every GPU
"""


#: `--provider` choices, read from the registry.
ProviderName = StrEnum("ProviderName", {name: name for name in PROVIDERS})  # type: ignore[misc]


class Method(StrEnum):
    sft = "sft"
    dpo = "dpo"


finetune_app = typer.Typer(
    help=f"Start, follow and cancel fine-tuning jobs ({', '.join(PROVIDERS)}).",
    no_args_is_help=True,
)


def _records(settings: Settings) -> FineTuneRecords:
    return FineTuneRecords(redis_client(settings.redis_url))


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
    provider: Annotated[
        ProviderName,
        typer.Option(
            help="; ".join(f"{s.name}: {s.description}" for s in PROVIDERS.values()) + ".",
        ),
    ] = ProviderName("local"),
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
    prepare: Annotated[
        bool,
        typer.Option(
            help="Only save the job; run it with `tracetune finetune train ID` (for example "
            "under `accelerate launch` on several GPUs)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    from tracetune.sync.worker.jobs import enqueue_finetune, finetune_start_job, new_finetune_record

    settings = Settings()
    records = _records(settings)
    exports = ExportRecords(records.client)
    export_record: ExportRecord = exports.get(export_id) if export_id else exports.latest()
    hyperparameters = _parse_params(param or [])
    if epochs is not None:
        hyperparameters["n_epochs"] = epochs
    if provider_spec(provider.value).local_model:
        if model is None:
            raise InvalidInputError(
                f"--model must name a local model folder for --provider {provider}"
            )
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
    elif not prepare:
        enqueue_finetune(settings, record, records)
    if as_json:
        out_json(record.model_dump())
    else:
        _print_record(record)


def _print_record(record: FineTuneRecord) -> None:
    out(f"{record.id}  {record.provider}/{record.method}  {record.status}  model {record.model}")
    out(f"  export {record.export_id}: " + ", ".join(Path(p).name for p in record.files.values()))
    if record.provider_job_id:
        out(f"  provider job {record.provider_job_id}")
    if record.fine_tuned_model:
        out(f"  fine-tuned model: {record.fine_tuned_model}")
    if record.model_version is not None:
        out(f"  registered as model version {record.model_version} (`tracetune models show`)")
    if record.error:
        out(f"  error: {record.error}")
    losses = record.metrics.get("loss") or []
    if losses:
        out(
            f"  loss: {losses[0]['loss']:.4f} (step {losses[0]['step']}) → "
            f"{losses[-1]['loss']:.4f} (step {losses[-1]['step']})"
        )
    for event in record.events[-5:]:
        out(f"  · {event}")
    out(f"  created {record.created_at}  updated {record.updated_at}")


@finetune_app.command("status")
def finetune_status(
    job_id: Annotated[str, typer.Argument(help="tracetune fine-tune job id (ft-...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a job, refreshed from its provider (status, events, model id when done).

    Example: `tracetune finetune status ft-3f9a1c2b7e --json`
    """
    from tracetune.sync.worker.jobs import settle

    settings = Settings()
    records = _records(settings)
    record = records.get(job_id)
    if not record.done:
        record = provider_for(record.provider, settings, records).refresh(record)
    record = settle(settings, records, record)
    out_json(record.model_dump()) if as_json else _print_record(record)


@finetune_app.command("train")
def finetune_train(
    job_id: Annotated[str, typer.Argument(help="A job saved with `start --prepare`.")],
) -> None:
    """Run a saved job in this process: what `accelerate launch` starts on each GPU."""
    from tracetune.sync.worker.jobs import finetune_start_job

    settings = Settings()
    records = _records(settings)
    finetune_start_job(records.get(job_id).id)
    if is_main_process():
        _print_record(records.get(job_id))


@finetune_app.command("cancel")
def finetune_cancel(job_id: Annotated[str, typer.Argument(help="Fine-tune job id.")]) -> None:
    """Cancel a job at its provider (a local job stops at its next training step).

    Example: `tracetune finetune cancel ft-3f9a1c2b7e`
    """
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
    """Fine-tuning jobs, newest first.

    Example: `tracetune finetune list --limit 5`
    """
    records = _records(Settings()).recent(limit)
    if as_json:
        for record in records:
            out_json(record.model_dump())
        return
    if not records:
        out("no fine-tuning jobs yet: `tracetune finetune start --help`")
    for record in records:
        model = record.fine_tuned_model or record.model
        out(f"{record.id}  {record.provider}/{record.method}  {record.status:<16} {model}")


@finetune_app.command("tiny-model")
def finetune_tiny_model(
    path: Annotated[Path, typer.Argument(help="Folder to create.")],
) -> None:
    """Create a tiny random Llama + tokenizer to try `--provider local` without a download.

    Example: `tracetune finetune tiny-model ./models/tiny`
    """
    from tracetune.sync.finetune.local_trl import create_tiny_model

    out(f"tiny model written to {create_tiny_model(path)}")


def register(app: typer.Typer) -> None:
    app.add_typer(finetune_app, name="finetune")
