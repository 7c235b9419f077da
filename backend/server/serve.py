"""Serving the backend: gunicorn in production, Werkzeug's server behind `--dev`.

Gunicorn runs threaded workers (`gthread`): Label Studio checks `/health` with a 1 s timeout
right before each prediction request, so a worker busy predicting must still answer it. Each
worker builds its own app (no preloading: torch and fork do not mix), which imports and runs
every signal before the worker serves, and loads the model in the background while it already
answers health checks. A worker that served well and then fails with a 500 is probed again;
if a signal no longer runs, it is retired and gunicorn starts a fresh process in its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from tracetune.backend.server.app import create_app
from tracetune.backend.server.readiness import prediction_problems
from tracetune.backend.server.webhooks import WebhookPlugin
from tracetune.sync.redis_client import redis_client
from tracetune.sync.settings import Settings

#: Label Studio waits up to 100 s for a prediction; gunicorn must not kill the worker first.
WORKER_TIMEOUT_S = 180


class BackendServer(BaseApplication):
    def __init__(
        self, settings: Settings, options: dict[str, Any], plugins: Sequence[WebhookPlugin]
    ) -> None:
        self.settings = settings
        self.options = options
        self.plugins = plugins
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return create_app(self.settings, plugins=self.plugins)


def retire_if_broken(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """gunicorn's `post_request` hook: after a 500, replace a worker whose signals broke.

    Only a worker that could predict when it started is retired, so a fault every fresh
    process shares (a missing package) shows on `/health` instead of restarting forever.
    """
    if resp.status_code != 500:
        return
    app: Flask = worker.wsgi
    if app.extensions["tracetune_problems_at_start"]:
        return
    backend = app.extensions["tracetune"]
    broken = {
        part: why
        for part, why in prediction_problems(backend.predictor.signals, backend.client).items()
        if part.startswith("signal ")
    }
    if broken:
        worker.log.error("worker %s cannot predict any more (%s): retiring it", worker.pid, broken)
        worker.alive = False


def serve(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    threads: int,
    dev: bool = False,
    plugins: Sequence[WebhookPlugin] = (),
) -> None:
    redis_client(settings.redis_url)  # a down Redis fails here, with one line
    if dev:
        create_app(settings, plugins=plugins).run(host=host, port=port, threaded=True)
        return
    BackendServer(
        settings,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": WORKER_TIMEOUT_S,
            "graceful_timeout": 30,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": "info",
            "post_request": retire_if_broken,
        },
        plugins,
    ).run()
