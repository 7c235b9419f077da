"""Feedback on runs: created through `/feedback` or the multipart stream, listed, summarised."""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from standins.langsmith.store.state import StoreState
from standins.langsmith.wire import ApiError, api_time, as_datetime, optional_uuid, utc_now


class FeedbackStore(StoreState):
    """`/feedback`, and the `feedback_stats` a run query returns."""

    def create_feedback(
        self, payload: Mapping[str, Any], *, require_run: bool = True
    ) -> dict[str, Any]:
        """Store feedback; `POST /feedback` answers 404 for a run it does not know yet."""
        if not payload.get("key"):
            raise ApiError(422, "feedback needs a key")
        score = payload.get("score")
        if score is not None and not isinstance(score, int | float):
            raise ApiError(422, f"feedback score must be a number or a boolean, not {score!r}")
        with self._lock:
            run_id = optional_uuid(payload.get("run_id"), "run_id")
            run = self._runs.get(run_id) if run_id else None
            if run_id and run is None and require_run:
                raise ApiError(404, f"Run {run_id} not found")
            now = api_time(utc_now())
            source = payload.get("feedback_source") or {"type": "api", "metadata": {}}
            feedback_id = optional_uuid(payload.get("id"), "feedback id") or str(uuid.uuid4())
            record = {
                "id": feedback_id,
                "created_at": api_time(as_datetime(payload.get("created_at"))) or now,
                "modified_at": api_time(as_datetime(payload.get("modified_at"))) or now,
                "run_id": run_id,
                "trace_id": optional_uuid(payload.get("trace_id"))
                or (run["trace_id"] if run else None),
                "key": str(payload["key"]),
                "score": float(score) if isinstance(score, bool) else score,
                "value": payload.get("value"),
                "comment": payload.get("comment"),
                "correction": payload.get("correction"),
                "feedback_source": {
                    "type": source.get("type", "api"),
                    "metadata": source.get("metadata") or {},
                    "user_id": source.get("user_id"),
                    "user_name": source.get("user_name"),
                },
                "session_id": optional_uuid(payload.get("session_id"))
                or (run["session_id"] if run else None),
                "start_time": run["start_time"] if run else None,
                "comparative_experiment_id": optional_uuid(
                    payload.get("comparative_experiment_id")
                ),
                "feedback_group_id": optional_uuid(payload.get("feedback_group_id")),
                "extra": payload.get("extra"),
            }
            if feedback_id in self._feedback:
                raise ApiError(409, f"feedback {feedback_id} already exists")
            self._feedback[feedback_id] = record
            if run_id:
                self._feedback_by_run[run_id].append(feedback_id)
            return record

    def add_feedback(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Load feedback records directly (as `list_feedback` returns them); returns ids."""
        return [self.create_feedback(r, require_run=False)["id"] for r in records]

    def get_feedback(self, feedback_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._feedback.get(feedback_id)
            if record is None:
                raise ApiError(404, "Feedback not found")
            return record

    def list_feedback(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`GET /feedback`: run ids, keys, source types, sessions; oldest first."""
        runs = list(dict.fromkeys(params.get("run") or []))
        keys = set(params.get("key") or [])
        sources = set(params.get("source") or [])
        sessions = set(params.get("session") or [])
        with self._lock:
            if runs:
                ids = [f for run_id in runs for f in self._feedback_by_run.get(run_id, [])]
            else:
                ids = list(self._feedback)
            chosen = [self._feedback[f] for f in ids]
        return [
            f
            for f in chosen
            if (not keys or f["key"] in keys)
            and (not sources or f["feedback_source"]["type"] in sources)
            and (not sessions or f["session_id"] in sessions)
        ]

    def _feedback_stats(self, run_id: str) -> dict[str, Any] | None:
        """`{key: {"n", "avg", "stdev", "errors", "values", "comments"}}` like the real API."""
        ids = self._feedback_by_run.get(run_id)
        if not ids:
            return None
        by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for feedback_id in ids:
            record = self._feedback[feedback_id]
            by_key[record["key"]].append(record)
        stats = {}
        for key, records in by_key.items():
            scores = [float(r["score"]) for r in records if r["score"] is not None]
            values: dict[str, int] = defaultdict(int)
            for r in records:
                if r["value"] is not None:
                    values[str(r["value"])] += 1
            stats[key] = {
                "n": len(records),
                "avg": statistics.fmean(scores) if scores else None,
                "stdev": statistics.pstdev(scores) if scores else None,
                "errors": 0,
                "values": dict(values),
                "comments": [r["comment"] for r in records if r["comment"]],
            }
        return stats
