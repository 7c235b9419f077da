"""`tracetune`: the one command line. Each part registers its commands from its own module.

Expected failures (`TracetuneError`) print one line on stderr and exit non-zero; only bugs
show a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tracetune.backend import cli as backend_cli
from tracetune.sync import cli_jobs, cli_stack, cli_sync
from tracetune.sync.errors import TracetuneError

app = typer.Typer(
    name="tracetune",
    help=(
        "Turn LangSmith traces into reviewed fine-tuning data, with humans in the loop in "
        "Label Studio.\n\nStart with `tracetune sync --help`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
cli_sync.register(app)
cli_stack.register(app)
cli_jobs.register(app)
backend_cli.register(app)

_stderr = Console(stderr=True)


def main() -> None:
    """Console-script entry point.

    Typer's standalone mode handles usage errors, `--help` and exit codes; our expected
    failures propagate out of it and become one line.
    """
    try:
        app()
    except TracetuneError as exc:
        _stderr.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
