"""Dataset and example routes: `/datasets`, `/examples`, and the multipart example upload."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from standins.langsmith.routes.http import body, page
from standins.langsmith.store import RunStore
from standins.langsmith.wire import (
    ApiError,
    api_time,
    canonical_uuid,
    json_response,
    loads,
    optional_uuid,
    utc_now,
)


def register(app: Flask, store: RunStore) -> None:
    @app.post("/datasets")
    def create_dataset() -> Response:
        return json_response(store.create_dataset(body()))

    @app.get("/datasets")
    def list_datasets() -> Response:
        params = {
            "id": [canonical_uuid(i, "dataset id") for i in request.args.getlist("id")],
            "name": request.args.get("name"),
            "name_contains": request.args.get("name_contains"),
            "data_type": request.args.get("data_type"),
        }
        return json_response(page(store.list_datasets(params)))

    @app.get("/datasets/<dataset_id>")
    def get_dataset(dataset_id: str) -> Response:
        return json_response(store.dataset(canonical_uuid(dataset_id, "dataset id")))

    @app.delete("/datasets/<dataset_id>")
    def delete_dataset(dataset_id: str) -> Response:
        store.delete_dataset(canonical_uuid(dataset_id, "dataset id"))
        return json_response({})

    @app.post("/examples")
    def create_example() -> Response:
        return json_response(store.example(store.create_example(body())))

    @app.post("/examples/bulk")
    def create_examples_bulk() -> Response:
        ids = [store.create_example(payload) for payload in body()]
        return json_response([store.example(i) for i in ids])

    @app.post("/v1/platform/datasets/<dataset_id>/examples")
    def upload_examples(dataset_id: str) -> Response:
        grouped: dict[str, dict[str, Any]] = {}
        for name, value in request.form.items(multi=True):
            example_id, _, field = name.partition(".")
            if field.startswith("attachment"):
                continue
            target = grouped.setdefault(example_id, {"id": example_id})
            if field:
                target[field] = loads(value)
            else:
                target.update(loads(value))
        dataset = canonical_uuid(dataset_id, "dataset id")
        ids = [store.create_example(payload, dataset) for payload in grouped.values()]
        return json_response({"example_ids": ids, "count": len(ids), "as_of": api_time(utc_now())})

    @app.get("/examples")
    def list_examples() -> Response:
        metadata = request.args.get("metadata")
        params = {
            "id": [canonical_uuid(i, "example id") for i in request.args.getlist("id")],
            "dataset": optional_uuid(request.args.get("dataset"), "dataset id"),
            "splits": request.args.getlist("splits"),
            "metadata": loads(metadata) if metadata else {},
        }
        if request.args.get("filter"):
            raise ApiError(400, "example filters are not supported by this server")
        return json_response(page(store.list_examples(params)))

    @app.get("/examples/<example_id>")
    def get_example(example_id: str) -> Response:
        return json_response(store.example(canonical_uuid(example_id, "example id")))
