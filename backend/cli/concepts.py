"""`tracetune concepts list | score | add`: embedding classifiers learned from examples."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated, Any

import typer

from tracetune.backend.cli.common import backend_for, out, read_jsonl, write_jsonl
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.settings import Settings

CONCEPTS_HELP = """Concepts: classifiers over sentence embeddings, learned from examples.

Examples:

  tracetune concepts list

  echo '{"text": "you are an idiot"}' | tracetune concepts score toxicity

  tracetune concepts add billing -p "I was charged twice" -p "refund my invoice" \\
      -n "how do I export a CSV" -n "the app crashes on start" --project "Docs QA review"
"""


def concepts_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per concept.")] = False,
) -> None:
    """Every concept: examples, version, threshold, in-domain and development-set figures.

    In-domain: cross-validated on its own examples (ROC-AUC, and precision and recall at the
    calibrated threshold). Development set: measured on labelled tasks of other domains than
    the examples (built-ins only, recorded by `bench/prelabel_quality.py --record`); the rules
    were tuned on that set, so a blind held-out set is what the lead scores at the end.

    Trains the built-in concepts first if this Redis has never seen them (seconds).
    """
    backend = backend_for(Settings())
    backend.ensure_builtins()
    rows: list[dict[str, Any]] = []
    for concept in backend.concepts.all():
        stored = backend.concepts.stored_model(concept.name)
        learned = sum(len(e) for e in backend.concepts.learned(concept.name).values())
        model = stored.model
        rows.append(
            {
                "name": concept.name,
                "flag": concept.flag,
                "reads": concept.reads.value,
                "builtin": concept.builtin,
                "positive": len(concept.positive),
                "negative": len(concept.negative),
                "background": concept.background,
                "learned": learned,
                "trained_positive": model.positives if model else None,
                "trained_negative": model.negatives if model else None,
                "version": stored.version,
                "cv_auc": model.cv_auc if model else None,
                "threshold": model.threshold if model else None,
                "cv_precision": model.cv_precision if model else None,
                "cv_recall": model.cv_recall if model else None,
                "validation": concept.validation,
                "description": concept.description,
            }
        )
    if as_json:
        write_jsonl(rows)
        return
    out(f"{'name':<20} {'flag':<16} {'reads':<8} {'own +/-':>8} {'learned':>7} "
         f"{'trained +/-':>11} {'version':>7} {'thresh':>6} {'in-domain auc/p/r':>18} "
         f"{'dev set auc/p/r':>22}")  # fmt: skip
    for row in rows:
        own = f"{row['positive']}/{row['negative']}"
        trained = f"{row['trained_positive']}/{row['trained_negative']}"
        threshold = "-" if row["threshold"] is None else f"{row['threshold']:.2f}"
        cv = _figures(row["cv_auc"], row["cv_precision"], row["cv_recall"])
        ood = row["validation"] or {}
        held_out = _figures(ood.get("roc_auc"), ood.get("precision"), ood.get("recall"))
        out(f"{row['name']:<20} {row['flag']:<16} {row['reads']:<8} {own:>8} "
             f"{row['learned']:>7} {trained:>11} {row['version']:>7} {threshold:>6} {cv:>18} "
             f"{held_out:>22}")  # fmt: skip


def _figures(auc: float | None, precision: float | None, recall: float | None) -> str:
    """ "0.977/0.90/0.64": ROC-AUC, then precision and recall at the threshold ("-" unmeasured)."""
    if auc is None:
        return "-"
    p = "-" if precision is None else f"{precision:.2f}"
    r = "-" if recall is None else f"{recall:.2f}"
    return f"{auc:.3f}/{p}/{r}"


def concepts_score(
    name: Annotated[str, typer.Argument(help="Concept name (see `concepts list`).")],
) -> None:
    """Score JSONL on stdin: each line's object comes back with a `score` in [0, 1].

    Example: `echo '{"text": "you are an idiot"}' | tracetune concepts score toxicity`
    """
    records = read_jsonl(sys.stdin)
    backend = backend_for(Settings())
    backend.ensure_builtins()
    backend.concepts.get(name)
    vectors = backend.embedder.embed([r["text"] for r in records])
    scores: Iterable[float] = backend.scorer.score(name, vectors) if records else []
    write_jsonl([{**r, "score": round(float(s), 4)} for r, s in zip(records, scores, strict=True)])


def concepts_add(
    name: Annotated[str, typer.Argument(help="New concept name: lower case, digits, _.")],
    positive: Annotated[
        list[str] | None, typer.Option("--positive", "-p", help="A text showing it (repeat).")
    ] = None,
    negative: Annotated[
        list[str] | None, typer.Option("--negative", "-n", help="A text not showing it (repeat).")
    ] = None,
    examples: Annotated[
        typer.FileText | None,
        typer.Option("--examples", help='JSONL of {"text": ..., "label": 1 or 0}.'),
    ] = None,
    flag: Annotated[str | None, typer.Option(help="Flag it sets (default: the name).")] = None,
    reads: Annotated[str, typer.Option(help="all, answers or prompt.")] = "all",
    description: Annotated[str, typer.Option(help="What it means, for reviewers.")] = "",
    background: Annotated[
        list[str] | None,
        typer.Option(help="Concept whose positives count as negatives here (repeat)."),
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="Also add the flag to this Label Studio project's config.")
    ] = None,
) -> None:
    """Create (or redefine) a concept from examples and train it now."""
    from tracetune.backend.concepts.store import Concept
    from tracetune.backend.concepts.training import train
    from tracetune.backend.signals import Reads

    positives, negatives = list(positive or []), list(negative or [])
    if examples is not None:
        for record in read_jsonl(examples):
            (positives if record.get("label") in (1, True, "1") else negatives).append(
                record["text"]
            )
    if reads not in {r.value for r in Reads}:
        raise InvalidInputError(f"--reads must be all, answers or prompt, not {reads!r}")
    concept = Concept(
        name=name,
        flag=flag or name,
        reads=Reads(reads),
        description=description,
        positive=positives,
        negative=negatives,
        background=list(background or []),
    )
    settings = Settings()
    backend = backend_for(settings)
    for other in concept.background:
        backend.concepts.get(other)
    existing = backend.concepts.names()
    if name in existing and backend.concepts.get(name).builtin:
        raise InvalidInputError(f"{name!r} is a built-in concept; choose another name")
    backend.concepts.put(concept)
    result = train(backend.concepts, backend.embedder, name)
    auc = "n/a" if result.cv_auc is None else f"{result.cv_auc:.3f}"
    out(f"concept {name!r}: version {result.version}, {result.positives} positive and "
         f"{result.negatives} negative examples, cross-validated ROC-AUC {auc}")  # fmt: skip
    if project:
        _add_flag(settings, project, concept.flag)


def _add_flag(settings: Settings, project: str, flag: str) -> None:
    from tracetune.sync.label_config import flag_choices, kind_of_config, render_label_config
    from tracetune.sync.label_studio.gateway import LabelStudioGateway, label_studio_errors

    gateway = LabelStudioGateway(settings)
    found = gateway.resolve_project(project)
    kind = kind_of_config(found.label_config)
    if kind is None:
        raise InvalidInputError(f"project {found.title!r} does not use a tracetune label config")
    flags = flag_choices(found.label_config)
    if flag in flags:
        out(f"project {found.title!r} already offers the flag {flag!r}")
        return
    config = render_label_config(kind, flags=[*flags, flag])
    with label_studio_errors(gateway.url):
        gateway.client.projects.update(id=found.id, label_config=config)
    out(f"project {found.title!r} now offers the flag {flag!r}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help=CONCEPTS_HELP, no_args_is_help=True)
    group.command("list")(concepts_list)
    group.command("score")(concepts_score)
    group.command("add")(concepts_add)
    app.add_typer(group, name="concepts")
