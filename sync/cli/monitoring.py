"""`tracetune models compare-feedback`: the current model's production traffic against the
previous one's, read from LangSmith, with a plain sentence on whether to roll back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tracetune.sync.cli.output import out, out_json
from tracetune.sync.evaluate.scoring import AnswerScorer
from tracetune.sync.evaluate.traffic import Traffic, add_signals, attribute, worse_findings
from tracetune.sync.langsmith.api_source import LangSmithApiSource, RunSelection
from tracetune.sync.langsmith.client import langsmith_errors, make_client
from tracetune.sync.langsmith.sources import SourceRun
from tracetune.sync.models.registry import ModelRegistry
from tracetune.sync.settings import Settings


def _row(role: str, label: str, stats: Traffic) -> str:
    data = stats.as_dict()
    rate = "-" if data["error_rate"] is None else f"{data['error_rate']:.0%}"
    feedback = ", ".join(
        f"{key} {v['mean']:.2f} (n={v['count']})" for key, v in data["feedback"].items()
    )
    signals = ", ".join(f"{k} {v}" for k, v in stats.signals.items() if v) or "none"
    return (
        f"{role:<9} {label:<4} {stats.model:<40} traces {stats.traces:<5} errors {rate:<5} "
        f"feedback: {feedback or '-'}; signals: {signals}"
    )


def compare_feedback(
    settings: Settings,
    projects: list[str],
    start: datetime,
    end: datetime | None,
    as_json: bool,
) -> None:
    registry = ModelRegistry(settings)
    current, previous = registry.get("current"), registry.get("previous")
    names = {
        "current": current.reference.name_in_traces,
        "previous": previous.reference.name_in_traces,
    }
    selection = RunSelection(
        projects=projects, root_only=False, start_time=start, end_time=end, error=None
    )
    source = LangSmithApiSource(make_client(settings), selection)
    with langsmith_errors(settings.langsmith_endpoint):
        runs = [item for item in source.fetch(None) if isinstance(item, SourceRun)]
    traffic = attribute(runs, names)
    add_signals(traffic, AnswerScorer(settings))
    findings = worse_findings(traffic["current"], traffic["previous"])
    result: dict[str, Any] = {
        "window": {"start": start.isoformat(), "end": end.isoformat() if end else None},
        "current": {"version": current.version, **traffic["current"].as_dict()},
        "previous": {"version": previous.version, **traffic["previous"].as_dict()},
        "looks_worse": bool(findings),
        "findings": findings,
        "rollback_restores": {"version": previous.version, "model": previous.reference.model},
    }
    if as_json:
        out_json(result)
        return
    window = (
        f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
        if end
        else f"since {start:%Y-%m-%d %H:%M}"
    )
    out(f"LangSmith {', '.join(projects)}, {window} UTC")
    out(_row("current", current.label, traffic["current"]))
    out(_row("previous", previous.label, traffic["previous"]))
    if findings:
        out(f"{current.label} looks worse than {previous.label}: " + "; ".join(findings) + ".")
        out(
            f"`tracetune models rollback --reason ...` would restore {previous.label} "
            f"({previous.reference.describe()})."
        )
    else:
        seen = traffic["current"].traces + traffic["previous"].traces
        out(f"no sign that {current.label} does worse than {previous.label} over {seen} traces.")
