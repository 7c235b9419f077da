"""`tracetune`: the one command line, and the place where the parts are composed.

Each part registers its command groups from its own module (one module per group). The
backend's served app gets the worker's automatic export as a webhook plugin here, so the
backend never imports the worker. Expected failures (`TracetuneError`) print one line on
stderr and exit non-zero; only bugs show a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tracetune.backend import cli as backend_cli
from tracetune.backend.server.webhooks import Handler, WebhookPlugin
from tracetune.sync.cli import eval as eval_cli
from tracetune.sync.cli import export, finetune, models, stack, sync, worker
from tracetune.sync.errors import TracetuneError
from tracetune.sync.settings import Settings
from tracetune.sync.worker.auto_export import REVIEW_ACTIONS


def _auto_export(settings: Settings) -> Handler:
    from tracetune.sync.worker.auto_export import webhook_handler

    return webhook_handler(settings)


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
sync.register(app)
stack.register(app)
worker.register(app)
export.register(app)
finetune.register(app)
models.register(app)
eval_cli.register(app)
backend_cli.register(app, plugins=[WebhookPlugin(REVIEW_ACTIONS, _auto_export)])

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
