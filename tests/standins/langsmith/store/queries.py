"""Reading runs back: `GET /runs/{id}` and v1's `POST /runs/query` with cursors and filters."""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from standins.langsmith.filters import FilterError, RunView, compile_filter
from standins.langsmith.run_values import (
    ALWAYS_SELECTED,
    DEFAULT_SELECT,
    RUN_FIELDS,
    flat_pairs,
    parent_ids,
    run_status,
    sort_key,
)
from standins.langsmith.store.cursors import (
    SortKey,
    decode_cursor,
    encode_cursor,
    start_bound,
    window_keys,
)
from standins.langsmith.store.state import StoreState
from standins.langsmith.wire import TENANT_ID, ApiError, as_datetime, canonical_uuid

#: The real API's largest `/runs/query` page.
MAX_PAGE = 100


class RunQueries(StoreState):
    """What v1 returns for a run, and which runs a query selects."""

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run with every field, as `GET /runs/{id}` returns it."""
        with self._lock:
            record = self._runs.get(run_id)
            if record is None:
                raise ApiError(404, "Run not found")
            return self._public(record, RUN_FIELDS)

    def runs(self, project: str | None = None) -> list[dict[str, Any]]:
        """Every run (of one project, by name), oldest first, with default fields."""
        with self._lock:
            if project is None:
                keys = sorted(sort_key(r) for r in self._runs.values())
            else:
                keys = list(self._order.get(self._project_ids_by_name.get(project, ""), []))
            return [self._public(self._runs[run_id], DEFAULT_SELECT) for _, run_id in keys]

    def query_runs(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`POST /runs/query`: one page and the cursor of the next."""
        page_size = body.get("limit") or MAX_PAGE
        if not isinstance(page_size, int) or page_size < 1:
            raise ApiError(422, "limit must be a positive integer")
        page_size = min(page_size, MAX_PAGE)
        order = body.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise ApiError(422, "order must be 'asc' or 'desc'")
        select = self._select(body.get("select"))
        if body.get("query"):
            raise ApiError(400, "natural-language queries are not supported by this server")
        after = decode_cursor(body["cursor"]) if body.get("cursor") else None
        with self._lock:
            keys = self._candidate_keys(body, after, descending=order == "desc")
            predicate = self._predicate(body)
            page: list[dict[str, Any]] = []
            last: SortKey | None = None
            for key in keys:
                record = self._runs[key[1]]
                if predicate(record):
                    page.append(self._public(record, select))
                    last = key
                    if len(page) == page_size:
                        break
        next_cursor = encode_cursor(last) if len(page) == page_size and last else None
        return {"runs": page, "cursors": {"next": next_cursor, "prev": None}}

    @staticmethod
    def _select(select: Any) -> tuple[str, ...]:
        if not select:
            return DEFAULT_SELECT
        unknown = [field for field in select if field not in RUN_FIELDS]
        if unknown:
            raise ApiError(422, f"unknown select fields: {', '.join(map(str, unknown))}")
        return tuple(dict.fromkeys((*ALWAYS_SELECTED, *select)))

    def _candidate_keys(
        self, body: Mapping[str, Any], after: SortKey | None, descending: bool
    ) -> Iterator[SortKey]:
        """Sort keys in page order, strictly after the cursor, from the narrowest index.

        A project's runs are read only within the body's start-time window (both ends
        included), so a narrow window reads little of a large project.
        """
        if body.get("id") is not None or body.get("trace"):
            if body.get("id") is not None:
                ids = [canonical_uuid(i, "run id") for i in body["id"]]
            else:
                ids = list(self._traces.get(canonical_uuid(body["trace"], "trace id"), []))
            keys = sorted(sort_key(self._runs[i]) for i in ids if i in self._runs)
            return window_keys(keys, after, descending)
        if body.get("session"):
            sessions = [canonical_uuid(s, "session id") for s in body["session"]]
        elif body.get("parent_run") or body.get("reference_example"):
            sessions = list(self._order)
        else:
            raise ApiError(
                400,
                "At least one of 'session', 'id', 'parent_run', 'trace' or "
                "'reference_example' must be specified",
            )
        low = start_bound(as_datetime(body.get("start_time")), inclusive=False)
        high = start_bound(as_datetime(body.get("end_time")), inclusive=True)
        streams = [
            window_keys(self._order.get(s, []), after, descending, low, high) for s in sessions
        ]
        return streams[0] if len(streams) == 1 else heapq.merge(*streams, reverse=descending)

    def _predicate(self, body: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
        """The body's arguments as one test; `id` ignores the others, as documented."""
        if body.get("id") is not None:
            return lambda record: True
        tests: list[Callable[[dict[str, Any]], bool]] = []
        if body.get("run_type"):
            tests.append(lambda r: r["run_type"] == body["run_type"])
        if body.get("is_root") is not None:
            tests.append(lambda r: (r["parent_run_id"] is None) == bool(body["is_root"]))
        if body.get("error") is not None:
            tests.append(lambda r: (r["error"] is not None) == bool(body["error"]))
        if body.get("start_time"):
            since = as_datetime(body["start_time"])
            tests.append(lambda r: r["_start"] >= since)
        if body.get("end_time"):
            until = as_datetime(body["end_time"])
            tests.append(lambda r: r["_start"] <= until)
        if body.get("parent_run"):
            parent = canonical_uuid(body["parent_run"], "parent_run")
            tests.append(lambda r: r["parent_run_id"] == parent)
        if body.get("reference_example"):
            examples = {canonical_uuid(e, "reference_example") for e in body["reference_example"]}
            tests.append(lambda r: r["reference_example_id"] in examples)
        tests.extend(self._filter_tests(body, self._field_value))
        return lambda record: all(test(record) for test in tests)

    def _filter_tests(
        self, body: Mapping[str, Any], values: Callable[[Mapping[str, Any], str], Any]
    ) -> list[Callable[[dict[str, Any]], bool]]:
        """`filter` tests the run, `trace_filter` its root, `tree_filter` any run of its trace."""
        try:
            compiled = {
                key: compile_filter(body[key])
                for key in ("filter", "trace_filter", "tree_filter")
                if body.get(key)
            }
        except FilterError as exc:
            raise ApiError(400, f"Invalid filter: {exc}") from exc
        tests: list[Callable[[dict[str, Any]], bool]] = []
        if "filter" in compiled:
            tests.append(lambda r: compiled["filter"](RunView(values, r)))
        if "trace_filter" in compiled:
            tests.append(
                lambda r: (
                    r["trace_id"] in self._runs
                    and compiled["trace_filter"](RunView(values, self._runs[r["trace_id"]]))
                )
            )
        if "tree_filter" in compiled:
            tests.append(
                lambda r: any(
                    compiled["tree_filter"](RunView(values, self._runs[i]))
                    for i in self._traces[r["trace_id"]]
                )
            )
        return tests

    def _usage_totals(self, record: Mapping[str, Any]) -> tuple[int, int, int]:
        """Tokens of the run and its descendants, as the real API sums them up the tree."""
        trace = self._traces.get(record["trace_id"], [])
        prefix = record["dotted_order"] + "."
        totals = [0, 0, 0]
        for run_id in trace:
            run = self._runs[run_id]
            if run["_usage"] and (run_id == record["id"] or run["dotted_order"].startswith(prefix)):
                for i, n in enumerate(run["_usage"]):
                    totals[i] += n
        return totals[0], totals[1], totals[2]

    def _field_value(
        self,
        record: Mapping[str, Any],
        name: str,
        feedback_window: tuple[datetime | None, datetime | None] = (None, None),
    ) -> Any:
        """What a filter field means for one run; feedback counts only inside the window."""
        if name in ("start_time", "end_time"):
            return record["_start"] if name == "start_time" else record["_end"]
        if name == "latency":
            end = record["_end"]
            return None if end is None else (end - record["_start"]).total_seconds()
        if name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            totals = self._usage_totals(record)
            return totals[("prompt_tokens", "completion_tokens", "total_tokens").index(name)]
        if name == "status":
            return run_status(record)
        if name == "is_root":
            return record["parent_run_id"] is None
        if name == "metadata":
            metadata = record["extra"].get("metadata")
            return metadata if isinstance(metadata, dict) else {}
        if name == "thread_id":
            metadata = self._field_value(record, "metadata")
            for key in ("thread_id", "session_id", "conversation_id"):
                if metadata.get(key) is not None:
                    return str(metadata[key])
            return None
        if name == "metadata_pairs":
            return list(self._field_value(record, "metadata").items())
        if name == "feedback_pairs":
            records = [self._feedback[f] for f in self._feedback_by_run.get(record["id"], [])]
            if feedback_window != (None, None):
                records = [f for f in records if _modified_within(f, feedback_window)]
            return [(f["key"], f["score"]) for f in records]
        if name in ("input_pairs", "output_pairs"):
            return list(flat_pairs(record["inputs" if name == "input_pairs" else "outputs"]))
        if name == "search_text":
            if "_search" not in record:
                texts = (record["name"], record["inputs"], record["outputs"], record["error"])
                record["_search"] = json.dumps(texts, ensure_ascii=False, default=str).lower()  # type: ignore[index]
            return record["_search"]
        if name == "total_cost":
            return None
        return record.get(name)

    def _public(self, record: Mapping[str, Any], select: Sequence[str]) -> dict[str, Any]:
        """The API shape of a stored run, with the selected fields only."""
        out: dict[str, Any] = {}
        for name in select:
            if name in record and not name.startswith("_"):
                out[name] = record[name]
            elif name == "status":
                out[name] = run_status(record)
            elif name == "feedback_stats":
                out[name] = self._feedback_stats(record["id"])
            elif name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                out[name] = self._field_value(record, name)
            elif name == "parent_run_ids":
                out[name] = parent_ids(record["dotted_order"])
            elif name == "child_run_ids":
                out[name] = [
                    i for i in self._traces[record["trace_id"]]
                    if self._runs[i]["parent_run_id"] == record["id"]
                ]  # fmt: skip
            elif name == "app_path":
                out[name] = (
                    f"/o/{TENANT_ID}/projects/p/{record['session_id']}/r/{record['id']}"
                    f"?trace_id={record['trace_id']}&start_time={record['start_time']}"
                )
            elif name == "s3_urls":
                out[name] = {}
            elif name == "in_dataset":
                out[name] = False
            elif name == "thread_id":
                out[name] = self._field_value(record, "thread_id")
            else:
                out[name] = None
        return out


def _modified_within(
    feedback: Mapping[str, Any], window: tuple[datetime | None, datetime | None]
) -> bool:
    """Whether feedback was last modified in `[since, until)`; an open end does not limit."""
    since, until = window
    modified = as_datetime(feedback["modified_at"])
    return (
        modified is not None
        and (since is None or modified >= since)
        and (until is None or modified < until)
    )
