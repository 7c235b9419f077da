"""The stand-in as a Flask app: authentication, error bodies, `/info` and the routes."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from standins.langsmith.routes import datasets, feedback, projects, runs
from standins.langsmith.routes import runs_v2 as runs_v2_routes
from standins.langsmith.store import RunStore
from standins.langsmith.wire import ApiError, json_response

#: What `/info` reports: a LangSmith with the v2 run query (self-hosted has it from 0.16.0);
#: the SDK sends feedback through multipart only from 0.8.10 on.
SERVER_VERSION = "0.16.2"
#: What `/info` reports with v2 switched off: a self-hosted LangSmith from before v2.
SERVER_VERSION_WITHOUT_V2 = "0.10.100"

#: One request as the stand-in saw it: method, path and `Content-Encoding` (zstd or None).
RequestRecord = tuple[str, str, str | None]


def _info(multipart: bool, runs_v2: bool) -> dict[str, Any]:
    return {
        "version": SERVER_VERSION if runs_v2 else SERVER_VERSION_WITHOUT_V2,
        "license_expiration_time": None,
        "batch_ingest_config": {
            "use_multipart_endpoint": multipart,
            "scale_up_qsize_trigger": 1000,
            "scale_up_nthreads_limit": 16,
            "scale_down_nempty_trigger": 4,
            "size_limit": 100,
            "size_limit_bytes": 20_971_520,
        },
        "instance_flags": {
            "dataset_examples_multipart_enabled": True,
            "examples_multipart_enabled": True,
            "zstd_compression_enabled": True,
            "search_enabled": True,
        },
    }


def create_app(
    api_key: str,
    store: RunStore | None = None,
    *,
    multipart: bool = True,
    runs_v2: bool = True,
    log: list[RequestRecord] | None = None,
) -> Flask:
    """The LangSmith API stand-in as a Flask app.

    `multipart` says whether `/info` steers the SDK's background ingestion to
    `/runs/multipart` (what the real API does today) or to `/runs/batch`; both always work.
    `runs_v2=False` leaves out `POST /api/v2/runs/query`, which then answers 404 like a
    self-hosted LangSmith older than 0.16.
    Every request is appended to `log`, so tests can tell which endpoint the SDK chose.
    """
    state = store if store is not None else RunStore()
    seen = log if log is not None else []
    app = Flask("langsmith-standin")
    app.config.update(MAX_FORM_MEMORY_SIZE=None, MAX_FORM_PARTS=None, MAX_CONTENT_LENGTH=None)

    @app.before_request
    def authenticate() -> Response | None:
        seen.append((request.method, request.path, request.headers.get("Content-Encoding")))
        # `/info` is public on the real API too; the SDK reads it before anything else.
        if request.path == "/info" or request.headers.get("x-api-key") == api_key:
            return None
        return json_response({"detail": "Invalid token"}, 401)

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return json_response({"detail": error.detail}, error.status)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return json_response({"detail": error.name}, error.code or 500)

    @app.get("/info")
    def info() -> Response:
        return json_response(_info(multipart, runs_v2))

    for resource in (runs, projects, feedback, datasets):
        resource.register(app, state)
    if runs_v2:
        runs_v2_routes.register(app, state)
    return app
