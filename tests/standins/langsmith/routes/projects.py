"""Project routes: `/sessions`."""

from __future__ import annotations

from flask import Flask, Response, request

from standins.langsmith.routes.http import body, flag, page
from standins.langsmith.store import RunStore
from standins.langsmith.wire import ApiError, canonical_uuid, json_response, optional_uuid


def register(app: Flask, store: RunStore) -> None:
    @app.post("/sessions")
    def create_session() -> Response:
        payload = body()
        if not payload.get("name"):
            raise ApiError(422, "a session needs a name")
        project_id = store.create_project(
            payload["name"],
            project_id=payload.get("id"),
            description=payload.get("description"),
            extra=payload.get("extra"),
            reference_dataset_id=payload.get("reference_dataset_id"),
            upsert=bool(flag("upsert")),
        )
        return json_response(store.project(project_id))

    @app.get("/sessions")
    def list_sessions() -> Response:
        params = {
            "id": [canonical_uuid(i, "session id") for i in request.args.getlist("id")],
            "name": request.args.get("name"),
            "name_contains": request.args.get("name_contains"),
            "reference_dataset": optional_uuid(request.args.get("reference_dataset")),
            "reference_free": flag("reference_free"),
        }
        return json_response(page(store.list_projects(params)))

    @app.get("/sessions/<project_id>")
    def get_session(project_id: str) -> Response:
        return json_response(store.project(canonical_uuid(project_id, "session id")))

    @app.patch("/sessions/<project_id>")
    def patch_session(project_id: str) -> Response:
        return json_response(store.update_project(canonical_uuid(project_id, "session id"), body()))

    @app.delete("/sessions/<project_id>")
    def delete_session(project_id: str) -> Response:
        store.delete_project(canonical_uuid(project_id, "session id"))
        return json_response({})
