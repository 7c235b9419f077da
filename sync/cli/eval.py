"""`tracetune eval run | report | list`: a candidate against the current model, on held-out
reviewed examples, scored automatically and (optionally) by reviewers and an LLM judge."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tracetune.sync.cli.output import out, out_json
from tracetune.sync.cli.progress import RichProgress
from tracetune.sync.evaluate.pairwise import DEFAULT_PROJECT
from tracetune.sync.models.references import ModelReference
from tracetune.sync.settings import Settings

EVAL_RUN_HELP = """Evaluate a candidate against the current model on held-out reviewed examples.

Both models answer the held-out prompts of an export's validation split (by default the
candidate's own training export; the manifests prove neither model trained on them). Answers
are scored against the reviewer-approved ones and checked with the ML backend's signals; with
--review (the default) a blind pairwise project in Label Studio collects reviewers' picks,
read back by `tracetune eval report EVAL_ID`. Running the same command again resumes.

Examples:

  tracetune eval run                                   # candidate vs current

  tracetune eval run --candidate 4 --baseline 2 --limit 50

  tracetune eval run --judge-model gpt-4.1 --judge-url http://127.0.0.1:4000/v1
"""

#: How each signal reads in the table.
SIGNAL_LABELS = {
    "pii_leak": "answers leaking PII",
    "secret_leak": "answers leaking secrets",
    "toxicity": "toxic answers",
    "profanity": "profane answers",
    "refusal": "refusals",
    "other_language": "answers in another language",
    "empty": "empty answers",
}

eval_app = typer.Typer(help="Evaluate model versions against each other.", no_args_is_help=True)


def print_report(report: dict[str, Any]) -> None:
    """The report as a table of both models and a few plain lines."""
    console = Console(highlight=False, soft_wrap=True, width=120)
    models = report["models"]
    plan = report["plan"]
    table = Table(
        title=f"evaluation {report['eval_id']}: {len(plan['example_ids'])} held-out examples "
        f"of {plan['export_id']}"
    )
    table.add_column("")
    for role in ("candidate", "baseline"):
        table.add_column(f"{role} v{models[role]['version']}", justify="right")
    rows = [("similarity to approved", "similarity"), ("ROUGE-L", "rouge_l"),
            ("mean length / approved", "mean_length_ratio")]  # fmt: skip
    for label, key in rows:
        table.add_row(label, *(f"{models[r][key]}" for r in ("candidate", "baseline")))
    for signal in models["candidate"]["signals"]:
        table.add_row(
            SIGNAL_LABELS.get(signal, signal),
            *(str(models[r]["signals"][signal]) for r in ("candidate", "baseline")),
        )
    console.print(table)
    for source, rate in report["win_rates"].items():
        if rate["comparisons"]:
            low, high = rate["interval_95"]
            out(
                f"win rate by {source}: {rate['win_rate']:.2f} (95% {low:.2f}-{high:.2f}), "
                f"{rate['wins']} wins, {rate['losses']} losses, {rate['ties']} ties"
            )
    for regression in report["regressions"]:
        kind = "safety regression" if regression["safety"] else "regression"
        out(f"{kind}: {regression['signal']} {regression['candidate']} vs {regression['baseline']}")
    excluded = report["plan"]["excluded"]
    if excluded:
        out("held-out examples left out: " + ", ".join(f"{n} {why}" for why, n in excluded.items()))
    review = report["review"]
    if review["url"]:
        out(f"blind review: {review['url']} ({review['answered']} answered, {review['open']} open)")
    out(report["headline"])
    out(f"report: {report['report_path']}")


@eval_app.command("run", help=EVAL_RUN_HELP)
def eval_run(
    candidate: Annotated[str, typer.Option(help="Version or alias to evaluate.")] = "candidate",
    baseline: Annotated[str, typer.Option(help="Version or alias to beat.")] = "current",
    export_id: Annotated[
        str | None,
        typer.Option("--export", help="Export whose validation split is the held-out set."),
    ] = None,
    review: Annotated[
        bool, typer.Option(help="Create or extend the blind pairwise project in Label Studio.")
    ] = True,
    review_project: Annotated[
        str, typer.Option(help="Title of the Label Studio comparison project.")
    ] = DEFAULT_PROJECT,
    judge_model: Annotated[
        str | None, typer.Option(help="LLM judge: a model behind an OpenAI-compatible API.")
    ] = None,
    judge_url: Annotated[
        str | None, typer.Option(help="The judge's base URL (default: OPENAI_BASE_URL / OpenAI).")
    ] = None,
    judge_key_env: Annotated[
        str | None, typer.Option(help="Environment variable with the judge's key.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per generation batch.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 128,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N held-out examples.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    from tracetune.sync.evaluate.run import EvalRequest, run_evaluation

    judge = None
    if judge_model:
        judge = ModelReference(
            kind="openai", model=judge_model, base_url=judge_url, api_key_env=judge_key_env
        )
    request = EvalRequest(
        candidate=candidate,
        baseline=baseline,
        export_id=export_id,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        limit=limit,
        review_project=review_project if review else None,
        judge=judge,
    )
    with RichProgress(enabled=not as_json) as progress:
        report = run_evaluation(Settings(), request, progress)
    out_json(report) if as_json else print_report(report)


@eval_app.command("report")
def eval_report(
    eval_id: Annotated[str, typer.Argument(help="Evaluation id (ev-...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read the reviewers' picks from Label Studio and record the evaluation's verdict."""
    from tracetune.sync.evaluate.run import refresh_report

    report = refresh_report(Settings(), eval_id)
    out_json(report) if as_json else print_report(report)


@eval_app.command("list")
def eval_list() -> None:
    """Evaluations on this machine, newest first, with their verdict."""
    import json

    folder = Settings().eval_dir
    reports = sorted(folder.glob("ev-*/report.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not reports:
        out(f"no evaluations in {folder} yet: `tracetune eval run --help`")
    for path in reports:
        report = json.loads(path.read_text())
        out(f"{report['eval_id']}  {report['at']}  {report['headline']}")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
