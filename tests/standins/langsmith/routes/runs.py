"""Run routes: ingest (`/runs`, `/runs/batch`, `/runs/multipart`) and v1 reading."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Flask, Response

from standins.langsmith.routes.http import body, multipart_parts
from standins.langsmith.store import RunStore
from standins.langsmith.wire import canonical_uuid, json_response


def register(app: Flask, store: RunStore) -> None:
    @app.post("/runs")
    def post_run() -> Response:
        store.create_run(body())
        return json_response({}, 202)

    @app.patch("/runs/<run_id>")
    def patch_run(run_id: str) -> Response:
        store.update_run(canonical_uuid(run_id, "run id"), body())
        return json_response({}, 202)

    @app.get("/runs/<run_id>")
    def get_run(run_id: str) -> Response:
        return json_response(store.get_run(canonical_uuid(run_id, "run id")))

    @app.post("/runs/batch")
    def batch() -> Response:
        payload = body()
        store.ingest(payload.get("post") or [], payload.get("patch") or [])
        return json_response({}, 202)

    @app.post("/runs/multipart")
    def multipart_ingest() -> Response:
        by_op: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for name, payload in multipart_parts().items():
            op, _, run_id = name.partition(".")
            by_op[op].append({"id": run_id, **payload})
        store.ingest(by_op["post"], by_op["patch"], by_op["feedback"])
        return json_response({}, 202)

    @app.post("/runs/query")
    def query_runs() -> Response:
        return json_response(store.query_runs(body()))
