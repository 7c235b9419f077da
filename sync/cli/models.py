"""`tracetune models list | show | current | register | promote | rollback | history |
compare-feedback`: the model registry (MLflow) as the team that ships the model uses it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from tracetune.sync.cli.output import out, out_json
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.models.references import (
    ModelReference,
    local_reference,
    retirement_note,
)
from tracetune.sync.models.registry import ModelRegistry, ModelVersionInfo, RegistryEvent
from tracetune.sync.settings import Settings

models_app = typer.Typer(
    help="The model registry: versions with lineage, the current model, promotions and "
    "rollbacks (MLflow, TRACETUNE_REGISTRY_URI).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who does this (default: the login name).")
]


def _registry() -> ModelRegistry:
    return ModelRegistry(Settings())


def _version_dict(version: ModelVersionInfo) -> dict[str, Any]:
    return {
        "version": version.version,
        "aliases": version.aliases,
        "reference": version.reference.model_dump(exclude_none=True),
        "lineage": version.lineage,
        "evaluations": version.evaluations,
        "description": version.description,
        "created_at": version.created_at,
    }


def _lineage_line(version: ModelVersionInfo) -> str:
    lineage = version.lineage
    if not lineage:
        return "registered by reference"
    training = lineage.get("training", {})
    loss = f", final loss {training['final_loss']:.4f}" if "final_loss" in training else ""
    base = Path(str(lineage.get("base_model"))).name
    method = f"{lineage.get('provider')}/{lineage.get('method')}"
    return f"{method} of {base} on {lineage.get('export_id')}{loss}"


def _last_evaluation(version: ModelVersionInfo) -> dict[str, Any] | None:
    if not version.evaluations:
        return None
    return max(version.evaluations.values(), key=lambda e: str(e.get("at", "")))


@models_app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """Every version, newest first, with its aliases, lineage and last evaluation."""
    versions = list(reversed(_registry().versions()))
    if as_json:
        for version in versions:
            out_json(_version_dict(version))
        return
    if not versions:
        out("no model versions yet: a finished fine-tune registers one (`tracetune models --help`)")
    for version in versions:
        aliases = ",".join(version.aliases) or "-"
        out(f"{version.label:<5} {aliases:<18} {version.reference.describe()}")
        out(f"      {_lineage_line(version)}")
        evaluation = _last_evaluation(version)
        if evaluation:
            out(f"      eval {evaluation['eval_id']}: {evaluation['headline']}")
        note = retirement_note(version.reference)
        if note:
            out(f"      warning: {note}")


@models_app.command("show")
def models_show(
    version: Annotated[
        str, typer.Argument(help="Version number or alias (current, candidate, previous).")
    ],
    as_json: JsonOption = False,
) -> None:
    """One version: what it points at, where it came from, and its evaluations."""
    info = _registry().get(version)
    if as_json:
        out_json(_version_dict(info))
        return
    out(f"{info.label}  aliases: {', '.join(info.aliases) or '-'}  registered {info.created_at}")
    out(f"  model: {info.reference.describe()}")
    out(f"  name in traces: {info.reference.name_in_traces}")
    if info.description:
        out(f"  {info.description}")
    for key, value in info.lineage.items():
        if key in ("examples", "hyperparameters", "training", "files"):
            value = json.dumps(value, sort_keys=True)
        out(f"  {key}: {value}")
    for evaluation in sorted(info.evaluations.values(), key=lambda e: str(e.get("at", ""))):
        out(f"  eval {evaluation['eval_id']} ({evaluation['at']}): {evaluation['headline']}")
        for blocker in evaluation.get("blockers") or []:
            out(f"    blocks promotion: {blocker}")
        out(f"    report: {evaluation['report']}")
    note = retirement_note(info.reference)
    if note:
        out(f"  warning: {note}")


@models_app.command("current")
def models_current(as_json: JsonOption = False) -> None:
    """The model the application should use (alias `current`): its model id or folder."""
    info = _registry().get("current")
    if as_json:
        out_json({"version": info.version, **info.reference.model_dump(exclude_none=True)})
    else:
        out(info.reference.model)


@models_app.command("register")
def models_register(
    local: Annotated[
        Path | None, typer.Option(help="A local model folder (full model or LoRA adapter).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="A model id behind an OpenAI-compatible API (ft:..., a vLLM name)."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="That API's base URL (default: OPENAI_BASE_URL / OpenAI).")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding that API's key (the key is never stored)."),
    ] = None,
    served_name: Annotated[
        str | None, typer.Option(help="The model name the application sends and LangSmith records.")
    ] = None,
    description: Annotated[str, typer.Option(help="Free text kept on the version.")] = "",
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a model served elsewhere, by reference (it becomes the `candidate`)."""
    if (local is None) == (model is None):
        raise InvalidInputError("give exactly one of --local FOLDER or --model ID")
    if local is not None:
        reference = local_reference(local, served_name)
    else:
        reference = ModelReference(
            kind="openai",
            model=str(model),
            base_url=base_url,
            served_name=served_name,
            api_key_env=api_key_env,
        )
    info = _registry().register(reference, description=description, by=by)
    if as_json:
        out_json(_version_dict(info))
        return
    out(f"registered {info.label}: {reference.describe()} (aliases: {', '.join(info.aliases)})")
    note = retirement_note(reference)
    if note:
        out(f"warning: {note}")


def _print_event(event: RegistryEvent) -> None:
    forced = " (forced)" if event.forced else ""
    replaced = f" (was v{event.replaced})" if event.replaced is not None else ""
    out(
        f"#{event.seq:<3} {event.at}  {event.action:<17} v{event.version}{replaced}{forced}  "
        f"by {event.by}: {event.reason}"
    )


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="Version number or alias (e.g. candidate).")],
    reason: Annotated[str, typer.Option(help="Why: kept in the history.")],
    force: Annotated[
        bool, typer.Option(help="Promote even when the evaluation says it is worse.")
    ] = False,
    by: ByOption = None,
) -> None:
    """Make a version `current`; refused when its evaluation against current says worse."""
    registry = _registry()
    event = registry.promote(version, reason=reason, by=by, force=force)
    _print_event(event)
    out(f"current is now v{event.version}: {registry.get('current').reference.describe()}")


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str, typer.Option(help="Why: kept in the history.")],
    by: ByOption = None,
) -> None:
    """Restore the previous `current` in one step."""
    registry = _registry()
    event = registry.rollback(reason=reason, by=by)
    _print_event(event)
    out(f"current is now v{event.version}: {registry.get('current').reference.describe()}")


@models_app.command("history")
def models_history(as_json: JsonOption = False) -> None:
    """Every registration, evaluation, promotion, refusal and rollback, oldest first."""
    events = _registry().events()
    for event in events:
        out_json(event.model_dump()) if as_json else _print_event(event)
    if not events and not as_json:
        out("no history yet")


_DURATION = re.compile(r"^(\d+)([hd])$")


def _since(value: str) -> datetime:
    match = _DURATION.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return datetime.now(UTC) - timedelta(hours=amount if unit == "h" else 24 * amount)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"--since takes 24h, 7d or an ISO time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@models_app.command("compare-feedback")
def models_compare_feedback(
    langsmith_project: Annotated[
        list[str], typer.Option(help="LangSmith project the application traces to (repeatable).")
    ],
    since: Annotated[str, typer.Option(help="Window start: 24h, 7d or an ISO time.")] = "7d",
    until: Annotated[str | None, typer.Option(help="Window end (ISO time; default now).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Production feedback of the current model against the previous one, from LangSmith."""
    from tracetune.sync.cli.monitoring import compare_feedback

    compare_feedback(
        Settings(), langsmith_project, _since(since), _since(until) if until else None, as_json
    )


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
