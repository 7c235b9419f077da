"""Datasets and their examples, as `/datasets`, `/examples` and the multipart upload keep them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from standins.langsmith.store.state import StoreState
from standins.langsmith.wire import (
    TENANT_ID,
    ApiError,
    api_time,
    as_datetime,
    canonical_uuid,
    optional_uuid,
    utc_now,
)


class DatasetStore(StoreState):
    """`/datasets` and `/examples`."""

    def create_dataset(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        name = payload.get("name")
        if not name:
            raise ApiError(422, "a dataset needs a name")
        with self._lock:
            if any(d["name"] == name for d in self._datasets.values()):
                raise ApiError(409, f"Dataset with name {name!r} already exists")
            now = api_time(utc_now())
            dataset_id = optional_uuid(payload.get("id"), "dataset id") or str(uuid.uuid4())
            extra = payload.get("extra") or {}
            self._datasets[dataset_id] = {
                "id": dataset_id,
                "name": name,
                "description": payload.get("description"),
                "data_type": payload.get("data_type") or "kv",
                "created_at": now,
                "modified_at": now,
                "tenant_id": TENANT_ID,
                "inputs_schema_definition": payload.get("inputs_schema_definition"),
                "outputs_schema_definition": payload.get("outputs_schema_definition"),
                "transformations": payload.get("transformations"),
                "metadata": extra.get("metadata") if isinstance(extra, dict) else None,
            }
            return self.dataset(dataset_id)

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._datasets.get(dataset_id)
            if record is None:
                raise ApiError(404, "Dataset not found")
            sessions = [
                p for p in self._projects.values() if p["reference_dataset_id"] == dataset_id
            ]
            return {
                **record,
                "example_count": len(self._examples_by_dataset.get(dataset_id, [])),
                "session_count": len(sessions),
                "last_session_start_time": max((p["start_time"] for p in sessions), default=None),
            }

    def list_datasets(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        ids = set(params.get("id") or [])
        name = params.get("name")
        contains = (params.get("name_contains") or "").lower()
        data_type = params.get("data_type")
        with self._lock:
            return [
                self.dataset(dataset_id)
                for dataset_id, d in self._datasets.items()
                if (not ids or dataset_id in ids)
                and (name is None or d["name"] == name)
                and contains in d["name"].lower()
                and (data_type is None or d["data_type"] == data_type)
            ]

    def delete_dataset(self, dataset_id: str) -> None:
        with self._lock:
            if self._datasets.pop(dataset_id, None) is None:
                raise ApiError(404, "Dataset not found")
            for example_id in self._examples_by_dataset.pop(dataset_id, []):
                del self._examples[example_id]

    def create_example(self, payload: Mapping[str, Any], dataset_id: str | None = None) -> str:
        """One example (`/examples`, `/examples/bulk`, multipart); returns its id."""
        dataset_id = dataset_id or canonical_uuid(payload.get("dataset_id"), "dataset_id")
        with self._lock:
            if dataset_id not in self._datasets:
                raise ApiError(404, "Dataset not found")
            example_id = optional_uuid(payload.get("id"), "example id") or str(uuid.uuid4())
            if example_id in self._examples:
                raise ApiError(409, f"Example {example_id} already exists")
            split = payload.get("split") or "base"
            created = api_time(as_datetime(payload.get("created_at")) or utc_now())
            self._examples[example_id] = {
                "id": example_id,
                "dataset_id": dataset_id,
                "inputs": payload.get("inputs") or {},
                "outputs": payload.get("outputs"),
                "metadata": {
                    **(payload.get("metadata") or {}),
                    "dataset_split": split if isinstance(split, list) else [split],
                },
                "created_at": created,
                "modified_at": created,
                "source_run_id": optional_uuid(payload.get("source_run_id")),
            }
            self._examples_by_dataset[dataset_id].append(example_id)
            self._datasets[dataset_id] = {**self._datasets[dataset_id], "modified_at": created}
            return example_id

    def example(self, example_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._examples.get(example_id)
            if record is None:
                raise ApiError(404, "Example not found")
            return record

    def list_examples(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`GET /examples`: by dataset and/or ids, splits and metadata; in creation order."""
        ids = params.get("id") or []
        dataset = params.get("dataset")
        splits = set(params.get("splits") or [])
        metadata = params.get("metadata") or {}
        with self._lock:
            if ids:
                chosen = [self._examples[i] for i in ids if i in self._examples]
            elif dataset:
                chosen = [self._examples[i] for i in self._examples_by_dataset.get(dataset, [])]
            else:
                chosen = list(self._examples.values())
        return [
            e
            for e in chosen
            if (not dataset or e["dataset_id"] == dataset)
            and (not splits or splits & set(e["metadata"].get("dataset_split", [])))
            and all(e["metadata"].get(k) == v for k, v in metadata.items())
        ]
