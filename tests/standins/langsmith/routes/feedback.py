"""Feedback routes: `/feedback`."""

from __future__ import annotations

from flask import Flask, Response, request

from standins.langsmith.routes.http import body, page
from standins.langsmith.store import RunStore
from standins.langsmith.wire import canonical_uuid, json_response


def register(app: Flask, store: RunStore) -> None:
    @app.post("/feedback")
    def create_feedback() -> Response:
        return json_response(store.create_feedback(body()))

    @app.get("/feedback")
    def list_feedback() -> Response:
        params = {
            "run": [canonical_uuid(i, "run id") for i in request.args.getlist("run")],
            "key": request.args.getlist("key"),
            "source": request.args.getlist("source"),
            "session": [canonical_uuid(i, "session id") for i in request.args.getlist("session")],
        }
        return json_response(page(store.list_feedback(params)))

    @app.get("/feedback/<feedback_id>")
    def get_feedback(feedback_id: str) -> Response:
        return json_response(store.get_feedback(canonical_uuid(feedback_id, "feedback id")))
