"""v2 run routes: `POST /api/v2/runs/query`, what `client.runs.query()` calls."""

from __future__ import annotations

from flask import Flask, Response

from standins.langsmith.routes.http import body
from standins.langsmith.store import RunStore
from standins.langsmith.wire import json_response


def register(app: Flask, store: RunStore) -> None:
    @app.post("/api/v2/runs/query")
    def query_runs_v2() -> Response:
        return json_response(store.query_runs_v2(body()))
