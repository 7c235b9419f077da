"""`tracetune signals list | run`: PII, secrets, language, refusals, near-duplicates..."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tracetune.backend.cli.common import backend_for, out, read_jsonl, write_jsonl
from tracetune.sync.errors import NotFoundError
from tracetune.sync.settings import Settings

SIGNALS_HELP = """Signals: PII, secrets, language, text statistics, refusals, code...

Examples:

  tracetune signals list

  echo '{"text": "mail me at jane@example.com"}' | tracetune signals run pii

  tracetune signals run near_duplicate < pairs.jsonl   # {"text": question, "answer": ...}
"""

#: Needs the whole input at once; not a per-text signal, so not in the registry.
NEAR_DUPLICATE = "near_duplicate"


def signals_list() -> None:
    """Every signal: name, the flag it sets, what it reads, which text sets the flag, what it
    finds."""
    from tracetune.backend.signals import SIGNALS

    out(f"{'name':<16} {'flag':<16} {'reads':<8} {'judges':<8} description")
    for name, signal in sorted(SIGNALS.items()):
        judges = signal.judges.value if signal.flag else "-"
        out(f"{name:<16} {signal.flag or '-':<16} {signal.reads.value:<8} {judges:<8} "
             f"{signal.description}")  # fmt: skip
    out(f"{NEAR_DUPLICATE:<16} {NEAR_DUPLICATE:<16} {'all':<8} {'task':<8} a later copy of an "
         "earlier task: the same question up to trivial differences and the same answer "
         "(MinHash per side); input lines: text, optional answer")  # fmt: skip


def signals_run(
    name: Annotated[str, typer.Argument(help="Signal name (see `signals list`).")],
) -> None:
    """Run a signal on JSONL from stdin: each line comes back with its result under NAME.

    Example: `echo '{"text": "mail jane@example.com"}' | tracetune signals run pii`
    """
    from tracetune.backend.signals import SIGNALS

    if name != NEAR_DUPLICATE and name not in SIGNALS:
        known = ", ".join([*sorted(SIGNALS), NEAR_DUPLICATE])
        raise NotFoundError(f"no signal named {name!r} (known: {known})")
    records = read_jsonl(sys.stdin)
    texts = [r["text"] for r in records]
    if name == NEAR_DUPLICATE:
        from tracetune.backend.prediction.near_duplicates import find_near_duplicates

        settings = Settings()
        backend = backend_for(settings)
        answers = [str(r.get("answer") or "") for r in records]
        matches = find_near_duplicates(
            backend.client, backend.embedder, texts, answers,
            settings.tracetune_near_duplicate_threshold,
        )  # fmt: skip
        results = [m.to_json() for m in matches]
    else:
        results = [r.to_json() for r in SIGNALS[name]().compute(texts)]
    write_jsonl([{**r, name: result} for r, result in zip(records, results, strict=True)])


def register(app: typer.Typer) -> None:
    group = typer.Typer(help=SIGNALS_HELP, no_args_is_help=True)
    group.command("list")(signals_list)
    group.command("run")(signals_run)
    app.add_typer(group, name="signals")
