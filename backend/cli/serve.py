"""`tracetune backend` (serve) and `tracetune backend connect`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from tracetune.backend.cli.common import out
from tracetune.sync.settings import Settings

if TYPE_CHECKING:
    from tracetune.backend.server.webhooks import WebhookPlugin

BACKEND_HELP = """Serve the ML backend that pre-annotates Label Studio tasks (gunicorn).

Label Studio calls it to predict flags, PII regions and scores for each task; reviewers then
accept or fix the pre-labels. Needs Redis (REDIS_URL) for its caches and concepts.

Examples:

  tracetune backend                                   # http://127.0.0.1:9090, 2 workers

  tracetune backend --host 0.0.0.0 --port 9090 --workers 4

  tracetune backend --dev                             # Werkzeug's server, one process

  tracetune backend connect -p "Docs QA review"       # make the project use it
"""

CONNECT_HELP = """Connect a Label Studio project to the backend: ML backend and webhook.

Registers `<url>/webhook` as a project webhook (with the basic-auth header when
BASIC_AUTH_USER/PASS are set), so reviewers' annotations reach the backend, then adds the
backend as the project's model. Safe to re-run: nothing is registered twice.

Example:

  tracetune backend connect -p "Docs QA review" --url http://127.0.0.1:9090
"""


def backend_command(plugins: Sequence[WebhookPlugin]) -> typer.Typer:
    """The `backend` group; `plugins` are the other parts' webhook handlers to serve."""

    def backend(
        ctx: typer.Context,
        host: Annotated[str | None, typer.Option(help="Interface (default: from the URL).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default: from the URL).")] = None,
        workers: Annotated[
            int | None, typer.Option(min=1, help="Processes (TRACETUNE_BACKEND_WORKERS, 2).")
        ] = None,
        threads: Annotated[
            int | None,
            typer.Option(min=1, help="Threads per process (TRACETUNE_BACKEND_THREADS)."),
        ] = None,
        dev: Annotated[bool, typer.Option(help="Werkzeug's development server instead.")] = False,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        from tracetune.backend.server.serve import serve

        settings = Settings()
        url = urlsplit(settings.tracetune_backend_url)
        serve(
            settings,
            host or url.hostname or "127.0.0.1",
            port or url.port or 9090,
            workers or settings.tracetune_backend_workers,
            threads or settings.tracetune_backend_threads,
            dev=dev,
            plugins=plugins,
        )

    group = typer.Typer(help=BACKEND_HELP, invoke_without_command=True)
    group.callback()(backend)
    group.command("connect", help=CONNECT_HELP)(connect)
    return group


def connect(
    project: Annotated[str, typer.Option("--project", "-p", help="Project title or id.")],
    url: Annotated[
        str | None,
        typer.Option(help="Backend URL as Label Studio reaches it (TRACETUNE_BACKEND_URL)."),
    ] = None,
    title: Annotated[str, typer.Option(help="Model name shown in Label Studio.")] = "tracetune",
) -> None:
    from tracetune.sync.label_studio.connect import connect_backend

    settings = Settings()
    done = connect_backend(settings, project, url or settings.tracetune_backend_url, title)
    out(f"project {done.project_title!r} (id {done.project_id}) uses the backend at "
        f"{done.backend_url}")  # fmt: skip
    out(f"  webhook  {'registered' if done.webhook_created else 'already registered'}: "
        f"{done.webhook_url}")  # fmt: skip
    out(f"  model    {'connected' if done.model_created else 'already connected'}: {title}")
    out(f"  labeling pre-labels from the live model {done.live_model!r} (Label All Tasks too)")
    tabs = done.tabs
    out(f"  tabs     {len(tabs.created)} created, {len(tabs.updated)} updated, "
        f"{len(tabs.unchanged)} unchanged")  # fmt: skip
