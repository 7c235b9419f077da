"""`tracetune`: the one command line. Each part registers its commands from its own module.

Expected failures (`TracetuneError`) print one line on stderr and exit non-zero; only bugs
show a traceback.
"""

from __future__ import annotations

import sys

import click
import typer
from rich.console import Console

from tracetune.sync import cli_stack, cli_sync
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

_stderr = Console(stderr=True)


def main() -> None:
    """Console-script entry point."""
    try:
        result = app(standalone_mode=False)
    except TracetuneError as exc:
        _stderr.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _stderr.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
