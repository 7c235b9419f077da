"""Runs coming in: loaded directly, or posted and patched the ways the SDK sends them."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from standins.langsmith.run_values import llm_usage, sort_key
from standins.langsmith.store.state import StoreState
from standins.langsmith.wire import (
    ApiError,
    api_time,
    as_datetime,
    canonical_uuid,
    loads,
    optional_uuid,
    utc_now,
)


class RunIngest(StoreState):
    """`POST /runs`, `PATCH /runs/{id}`, batch and multipart ingest, and direct loading."""

    def add_runs(self, runs: Iterable[Mapping[str, Any]], project: str | None = None) -> list[str]:
        """Load runs directly (as the SDK sends or returns them); returns their ids.

        Fields the API computes (status, feedback_stats, token totals, child runs...) are
        ignored and recomputed. `project` names the project to put them all in; otherwise
        each run's `session_id` / `session_name` decides.
        """
        ids = []
        touched: set[str] = set()
        with self._lock:
            try:
                for payload in runs:
                    record = self._new_record(payload, project)
                    if record["id"] in self._runs:
                        raise ApiError(409, f"run {record['id']} already exists")
                    self._runs[record["id"]] = record
                    self._order[record["session_id"]].append(sort_key(record))
                    self._traces[record["trace_id"]].append(record["id"])
                    touched.add(record["session_id"])
                    ids.append(record["id"])
            finally:  # appended unsorted for speed: sort even when a run was refused
                for session_id in touched:
                    self._order[session_id].sort()
        return ids

    def load_jsonl(self, path: Path | str, project: str | None = None) -> list[str]:
        """`add_runs` from a JSONL file of runs (a fixture under tests/fixtures/runs)."""
        with Path(path).open("rb") as handle:
            return self.add_runs((loads(line) for line in handle if line.strip()), project)

    def create_run(self, payload: Mapping[str, Any]) -> str:
        """`POST /runs`: 409 when the id exists, as the real API answers (the SDK ignores it)."""
        with self._lock:
            run_id = optional_uuid(payload.get("id"), "run id")
            if run_id is not None and run_id in self._runs:
                raise ApiError(409, f"run {run_id} already exists")
            return self._post(payload)

    def ingest(
        self,
        posts: Sequence[Mapping[str, Any]] = (),
        patches: Sequence[Mapping[str, Any]] = (),
        feedback: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """A batch: every post, then every patch, then feedback, like the real ingest queue."""
        with self._lock:
            for payload in posts:
                self._post(payload)
            for payload in patches:
                run_id = canonical_uuid(payload.get("id"), "run id")
                if run_id in self._runs:
                    self._patch(run_id, payload)
                else:
                    self._pending_patches[run_id].append(payload)
            for payload in feedback:
                self.create_feedback(payload, require_run=False)

    def update_run(self, run_id: str, payload: Mapping[str, Any]) -> None:
        """`PATCH /runs/{id}`."""
        with self._lock:
            if run_id not in self._runs:
                raise ApiError(404, "Run not found")
            self._patch(run_id, payload)

    def _post(self, payload: Mapping[str, Any]) -> str:
        run_id = optional_uuid(payload.get("id"), "run id")
        if run_id is not None and run_id in self._runs:
            self._patch(run_id, payload)
            return run_id
        record = self._new_record(payload)
        self._insert(record)
        for pending in self._pending_patches.pop(record["id"], []):
            self._patch(record["id"], pending)
        return record["id"]

    def _new_record(self, payload: Mapping[str, Any], project: str | None = None) -> dict[str, Any]:
        if not payload.get("name") or not payload.get("run_type"):
            raise ApiError(422, "a run needs a name and a run_type")
        run_id = optional_uuid(payload.get("id"), "run id") or str(uuid.uuid4())
        start = as_datetime(payload.get("start_time")) or utc_now()
        end = as_datetime(payload.get("end_time"))
        parent_id = optional_uuid(payload.get("parent_run_id"), "parent_run_id")
        parent = self._runs.get(parent_id) if parent_id else None
        segment = f"{start:%Y%m%dT%H%M%S%fZ}{run_id}"
        trace_id = optional_uuid(payload.get("trace_id"), "trace_id") or (
            parent["trace_id"] if parent else parent_id or run_id
        )
        dotted = payload.get("dotted_order") or (
            f"{parent['dotted_order']}.{segment}" if parent else segment
        )
        outputs = payload.get("outputs")
        return {
            "id": run_id,
            "name": str(payload["name"]),
            "run_type": str(payload["run_type"]),
            "start_time": api_time(start),
            "end_time": api_time(end),
            "inputs": payload.get("inputs") or {},
            "outputs": outputs,
            "error": payload.get("error"),
            "extra": payload.get("extra") or {},
            "tags": list(payload.get("tags") or []),
            "events": payload.get("events") or [],
            "serialized": payload.get("serialized"),
            "reference_example_id": optional_uuid(payload.get("reference_example_id")),
            "parent_run_id": parent_id,
            "trace_id": trace_id,
            "dotted_order": dotted,
            "session_id": self._project_for(payload, project),
            "_start": start,
            "_end": end,
            "_usage": llm_usage(outputs) if payload["run_type"] == "llm" else None,
        }

    def _insert(self, record: dict[str, Any]) -> None:
        self._runs[record["id"]] = record
        bisect.insort(self._order[record["session_id"]], sort_key(record))
        self._traces[record["trace_id"]].append(record["id"])

    def _patch(self, run_id: str, payload: Mapping[str, Any]) -> None:
        """Merge an update: set fields it carries (None means "not sent"), merge `extra`."""
        old = self._runs[run_id]
        new = {k: v for k, v in old.items() if k != "_search"}
        for key in ("name", "run_type", "inputs", "outputs", "error", "events", "serialized"):
            if payload.get(key) is not None:
                new[key] = payload[key]
        if payload.get("tags") is not None:
            new["tags"] = list(payload["tags"])
        if payload.get("reference_example_id") is not None:
            new["reference_example_id"] = canonical_uuid(payload["reference_example_id"])
        if isinstance(payload.get("extra"), dict):
            extra = {**old["extra"], **payload["extra"]}
            if isinstance(old["extra"].get("metadata"), dict):
                extra["metadata"] = {**old["extra"]["metadata"], **(extra.get("metadata") or {})}
            new["extra"] = extra
        if payload.get("end_time") is not None:
            new["_end"] = as_datetime(payload["end_time"])
            new["end_time"] = api_time(new["_end"])
        if payload.get("start_time") is not None:
            new["_start"] = as_datetime(payload["start_time"])
            new["start_time"] = api_time(new["_start"])
        new["_usage"] = llm_usage(new["outputs"]) if new["run_type"] == "llm" else None
        self._runs[run_id] = new
        if sort_key(new) != sort_key(old):
            order = self._order[old["session_id"]]
            order.pop(bisect.bisect_left(order, sort_key(old)))
            bisect.insort(order, sort_key(new))
