"""Serving the backend: gunicorn in production, Werkzeug's server behind `--dev`.

Gunicorn runs threaded workers (`gthread`): Label Studio checks `/health` with a 1 s timeout
right before each prediction request, so a worker busy predicting must still answer it. Each
worker builds its own app (no preloading: torch and fork do not mix) and loads the model in
the background while it already answers health checks.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from tracetune.backend.app import create_app
from tracetune.backend.services import backend_redis
from tracetune.sync.errors import ServiceUnavailableError
from tracetune.sync.settings import Settings

#: Label Studio waits up to 100 s for a prediction; gunicorn must not kill the worker first.
WORKER_TIMEOUT_S = 180


class BackendServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return create_app(self.settings)


def check_redis(settings: Settings) -> None:
    try:
        backend_redis(settings.redis_url).ping()
    except Exception as exc:
        raise ServiceUnavailableError(
            f"cannot reach Redis at {settings.redis_url}: {exc} (start it with `tracetune up`)"
        ) from exc


def serve(
    settings: Settings, host: str, port: int, workers: int, threads: int, dev: bool = False
) -> None:
    check_redis(settings)
    if dev:
        create_app(settings).run(host=host, port=port, threaded=True)
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
        },
    ).run()
