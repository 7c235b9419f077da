"""Projects ("sessions"): created by name or by a first trace, listed, renamed, deleted."""

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


class ProjectStore(StoreState):
    """`/sessions`: what a project is and which runs belong to it."""

    def create_project(
        self,
        name: str,
        *,
        project_id: str | None = None,
        description: str | None = None,
        extra: Mapping[str, Any] | None = None,
        reference_dataset_id: str | None = None,
        upsert: bool = False,
    ) -> str:
        """Create a project (a "session") and return its id; 409 if the name is taken."""
        with self._lock:
            existing = self._project_ids_by_name.get(name)
            if existing is not None:
                if not upsert:
                    raise ApiError(409, f"Session with name {name!r} already exists")
                return existing
            new_id = canonical_uuid(project_id) if project_id else str(uuid.uuid4())
            if new_id in self._projects:
                raise ApiError(409, f"Session {new_id} already exists")
            self._projects[new_id] = {
                "id": new_id,
                "name": name,
                "description": description,
                "start_time": api_time(utc_now()),
                "end_time": None,
                "extra": dict(extra) if extra else None,
                "tenant_id": TENANT_ID,
                "reference_dataset_id": optional_uuid(reference_dataset_id, "dataset id"),
            }
            self._project_ids_by_name[name] = new_id
            return new_id

    def _project_for(self, payload: Mapping[str, Any], project: str | None = None) -> str:
        """The project a run goes to: the named one, its `session_id` or `session_name`.

        A name the store does not know yet is created, as the real API does for traces; an
        unknown id (runs loaded from another LangSmith) becomes a project named by the id.
        """
        name = project or payload.get("session_name") or payload.get("project_name")
        if not project and payload.get("session_id"):
            session_id = canonical_uuid(payload["session_id"], "session_id")
            if session_id in self._projects:
                return session_id
            return self.create_project(name or session_id, project_id=session_id, upsert=True)
        name = name or "default"
        return self._project_ids_by_name.get(name) or self.create_project(name)

    def project(self, project_id: str) -> dict[str, Any]:
        """A project as `GET /sessions/{id}` returns it (a `TracerSessionResult`)."""
        with self._lock:
            record = self._projects.get(project_id)
            if record is None:
                raise ApiError(404, "Session not found")
            runs = self._order.get(project_id) or []
            return {
                **record,
                "run_count": len(runs),
                "last_run_start_time": runs[-1][0] if runs else None,
                "feedback_stats": None,
                "session_feedback_stats": None,
                "run_facets": None,
                "latency_p50": None,
                "latency_p99": None,
                "total_tokens": None,
                "prompt_tokens": None,
                "completion_tokens": None,
                "total_cost": None,
                "prompt_cost": None,
                "completion_cost": None,
                "error_rate": None,
            }

    def list_projects(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`GET /sessions` filters: id, name, name_contains, reference_dataset, reference_free."""
        ids = set(params.get("id") or [])
        name = params.get("name")
        contains = (params.get("name_contains") or "").lower()
        dataset = params.get("reference_dataset")
        free = params.get("reference_free")
        with self._lock:
            chosen = [
                self.project(pid)
                for pid, p in self._projects.items()
                if (not ids or pid in ids)
                and (name is None or p["name"] == name)
                and contains in p["name"].lower()
                and (dataset is None or p["reference_dataset_id"] == dataset)
                and (free is None or (p["reference_dataset_id"] is None) == free)
            ]
        return sorted(chosen, key=lambda p: p["start_time"], reverse=True)

    def update_project(self, project_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = self._projects.get(project_id)
            if record is None:
                raise ApiError(404, "Session not found")
            updated = dict(record)
            for key in ("name", "description", "extra"):
                if changes.get(key) is not None:
                    updated[key] = changes[key]
            if changes.get("end_time") is not None:
                updated["end_time"] = api_time(as_datetime(changes["end_time"]))
            if updated["name"] != record["name"]:
                if updated["name"] in self._project_ids_by_name:
                    raise ApiError(409, f"Session with name {updated['name']!r} already exists")
                del self._project_ids_by_name[record["name"]]
                self._project_ids_by_name[updated["name"]] = project_id
            self._projects[project_id] = updated
            return self.project(project_id)

    def delete_project(self, project_id: str) -> None:
        """Delete a project with its runs (and their feedback)."""
        with self._lock:
            record = self._projects.pop(project_id, None)
            if record is None:
                raise ApiError(404, "Session not found")
            del self._project_ids_by_name[record["name"]]
            for _, run_id in self._order.pop(project_id, []):
                run = self._runs.pop(run_id)
                trace = self._traces[run["trace_id"]]
                trace.remove(run_id)
                if not trace:
                    del self._traces[run["trace_id"]]
                for feedback_id in self._feedback_by_run.pop(run_id, []):
                    self._feedback.pop(feedback_id, None)
