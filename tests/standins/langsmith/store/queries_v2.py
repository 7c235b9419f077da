"""v2's `POST /api/v2/runs/query`, as langsmith 0.15.1's `client.runs.query()` sends and parses it.

The request is `RunQueryV2Params` (`langsmith/types/run_query_v2_params.py`): `project_ids` or
`reference_dataset_id` (exactly one), a start-time window that defaults to the last day,
`run_type` as the upper-case `RunType` enum, `has_error`, `is_root`, `ids`, `trace_id`,
`reference_examples`, `filter` / `trace_filter` / `tree_filter`, a feedback modified-at window,
`include_subtree_usage`, `selects` (`RunSelectField`; without it only `id`), `page_size` up to
1000 and `cursor`. The answer is `{"items": [...], "next_cursor": ...}` (the SDK's
`ItemsCursorPostPagination`), each run a `langsmith.types.Run`: only the selected properties,
upper-case `run_type` and `status`, RFC 3339 times, `project_id` where v1 says `session_id`.
Newest runs come first.
"""

from __future__ import annotations

import functools
import heapq
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from standins.langsmith.filters import FilterError, filter_fields
from standins.langsmith.run_values import parent_ids, sort_key
from standins.langsmith.store.cursors import (
    SortKey,
    decode_cursor,
    encode_cursor,
    start_bound,
    window_keys,
)
from standins.langsmith.store.queries import RunQueries
from standins.langsmith.wire import TENANT_ID, ApiError, as_datetime, canonical_uuid, utc_now

#: `RunType`: the values v2 accepts and returns for `run_type`.
RUN_TYPES = ("TOOL", "CHAIN", "LLM", "RETRIEVER", "EMBEDDING", "PROMPT", "PARSER")
#: `RunSelectField`: every property a v2 run can carry.
SELECTS = (
    "ID", "NAME", "RUN_TYPE", "STATUS", "START_TIME", "END_TIME", "LATENCY_SECONDS",
    "FIRST_TOKEN_TIME", "ERROR", "ERROR_PREVIEW", "EXTRA", "METADATA", "EVENTS", "INPUTS",
    "INPUTS_PREVIEW", "OUTPUTS", "OUTPUTS_PREVIEW", "MANIFEST", "PARENT_RUN_IDS", "PROJECT_ID",
    "TRACE_ID", "THREAD_ID", "DOTTED_ORDER", "IS_ROOT", "REFERENCE_EXAMPLE_ID",
    "REFERENCE_DATASET_ID", "TOTAL_TOKENS", "PROMPT_TOKENS", "COMPLETION_TOKENS", "TOTAL_COST",
    "PROMPT_COST", "COMPLETION_COST", "PROMPT_TOKEN_DETAILS", "COMPLETION_TOKEN_DETAILS",
    "PROMPT_COST_DETAILS", "COMPLETION_COST_DETAILS", "PRICE_MODEL_ID", "TAGS", "APP_PATH",
    "ATTACHMENTS", "THREAD_EVALUATION_TIME", "IS_IN_DATASET", "LAST_QUEUED_AT", "SHARE_URL",
    "FEEDBACK_STATS", "LS_USER_ID",
)  # fmt: skip
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: Without `min_start_time`, v2 reads the last day only.
DEFAULT_WINDOW = timedelta(days=1)
#: How much of a text a `*_PREVIEW` property keeps.
PREVIEW_CHARS = 150
_TOKEN_FIELDS = ("PROMPT_TOKENS", "COMPLETION_TOKENS", "TOTAL_TOKENS")
_FEEDBACK_FIELDS = {"feedback_key", "feedback_score"}
#: Properties this server has nothing for; the real API answers null for a run without them.
_ALWAYS_NULL = {
    "TOTAL_COST", "PROMPT_COST", "COMPLETION_COST", "PROMPT_TOKEN_DETAILS",
    "COMPLETION_TOKEN_DETAILS", "PROMPT_COST_DETAILS", "COMPLETION_COST_DETAILS",
    "PRICE_MODEL_ID", "THREAD_EVALUATION_TIME", "LAST_QUEUED_AT", "SHARE_URL", "LS_USER_ID",
}  # fmt: skip

#: Properties that are a stored field as it is.
_STORED = {
    "ID": "id", "NAME": "name", "ERROR": "error", "EXTRA": "extra", "EVENTS": "events",
    "INPUTS": "inputs", "OUTPUTS": "outputs", "PROJECT_ID": "session_id",
    "TRACE_ID": "trace_id", "DOTTED_ORDER": "dotted_order", "TAGS": "tags",
    "REFERENCE_EXAMPLE_ID": "reference_example_id",
}  # fmt: skip

Window = tuple[datetime | None, datetime | None]


class RunQueriesV2(RunQueries):
    """`POST /api/v2/runs/query` over the same runs, filters and feedback as v1."""

    def query_runs_v2(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """One page of runs, newest first, and the cursor of the next page if there is one."""
        if body.get("ai_search") or body.get("sem_filter"):
            raise ApiError(501, "AI search and semantic filters are not available on this server")
        page_size = _page_size(body.get("page_size"))
        selects = _selects(body.get("selects"))
        run_type = _run_type(body.get("run_type"))
        after = decode_cursor(body["cursor"]) if body.get("cursor") else None
        subtree = bool(body.get("include_subtree_usage"))
        with self._lock:
            sessions, earliest = self._v2_sessions(body)
            now = utc_now()
            since = as_datetime(body.get("min_start_time")) or earliest or now - DEFAULT_WINDOW
            until = as_datetime(body.get("max_start_time")) or now
            predicate = self._v2_predicate(body, sessions, run_type, (since, until))
            page: list[dict[str, Any]] = []
            last: SortKey | None = None
            more = False
            for key in self._v2_candidates(body, sessions, (since, until), after):
                record = self._runs[key[1]]
                if not predicate(record):
                    continue
                if len(page) == page_size:
                    more = True  # a cursor only when another run matches, so no empty page
                    break
                page.append(self._public_v2(record, selects, subtree))
                last = key
        next_cursor = encode_cursor(last) if more and last else None
        return {"items": page, "next_cursor": next_cursor}

    def _v2_sessions(self, body: Mapping[str, Any]) -> tuple[set[str], datetime | None]:
        """The projects to read, and the window's default start for a dataset's experiments."""
        project_ids, dataset = body.get("project_ids"), body.get("reference_dataset_id")
        if bool(project_ids) == bool(dataset):
            raise ApiError(400, "set exactly one of project_ids or reference_dataset_id")
        if project_ids:
            if not isinstance(project_ids, list):
                raise ApiError(400, "project_ids must be a list of project UUIDs")
            return {canonical_uuid(p, "project id") for p in project_ids}, None
        dataset_id = canonical_uuid(dataset, "reference_dataset_id")
        if dataset_id not in self._datasets:
            raise ApiError(404, "Dataset not found")
        experiments = [
            p for p in self._projects.values() if p["reference_dataset_id"] == dataset_id
        ]
        starts = [as_datetime(p["start_time"]) for p in experiments]
        return {p["id"] for p in experiments}, min((s for s in starts if s), default=None)

    def _v2_candidates(
        self, body: Mapping[str, Any], sessions: set[str], window: Window, after: SortKey | None
    ) -> Iterator[SortKey]:
        """Sort keys newest first after the cursor: of the given runs, the trace, or the window."""
        if body.get("ids") or body.get("trace_id"):
            if body.get("ids"):
                ids = [canonical_uuid(i, "run id") for i in body["ids"]]
            else:
                ids = list(self._traces.get(canonical_uuid(body["trace_id"], "trace_id"), []))
            keys = sorted(sort_key(self._runs[i]) for i in ids if i in self._runs)
            return window_keys(keys, after, descending=True)
        low = start_bound(window[0], inclusive=False)
        high = start_bound(window[1], inclusive=False)
        streams = [
            window_keys(self._order.get(s, []), after, True, low, high) for s in sorted(sessions)
        ]
        return heapq.merge(*streams, reverse=True)

    def _v2_predicate(
        self, body: Mapping[str, Any], sessions: set[str], run_type: str | None, window: Window
    ) -> Callable[[dict[str, Any]], bool]:
        since, until = window
        tests: list[Callable[[dict[str, Any]], bool]] = [
            lambda r: r["session_id"] in sessions,
            lambda r: since <= r["_start"] < until,  # type: ignore[operator]
        ]
        if run_type is not None:
            tests.append(lambda r: r["run_type"].upper() == run_type)
        if body.get("is_root") is not None:
            tests.append(lambda r: (r["parent_run_id"] is None) == bool(body["is_root"]))
        if body.get("has_error") is not None:
            tests.append(lambda r: (r["error"] is not None) == bool(body["has_error"]))
        if body.get("reference_examples"):
            examples = {canonical_uuid(e, "reference example") for e in body["reference_examples"]}
            tests.append(lambda r: r["reference_example_id"] in examples)
        values = functools.partial(self._field_value, feedback_window=self._feedback_window(body))
        tests.extend(self._filter_tests(body, values))
        return lambda record: all(test(record) for test in tests)

    @staticmethod
    def _feedback_window(body: Mapping[str, Any]) -> Window:
        """`[min_feedback_modified_at, max_feedback_modified_at)`, for the filters' feedback."""
        window = (
            as_datetime(body.get("min_feedback_modified_at")),
            as_datetime(body.get("max_feedback_modified_at")),
        )
        if window == (None, None):
            return window
        try:
            named = set().union(
                *(
                    filter_fields(body[k])
                    for k in ("filter", "trace_filter", "tree_filter")
                    if body.get(k)
                )
            )
        except FilterError as exc:
            raise ApiError(400, f"Invalid filter: {exc}") from exc
        if not named & _FEEDBACK_FIELDS:
            raise ApiError(
                400, "a feedback modified-at bound needs a feedback condition in a filter"
            )
        return window

    def _public_v2(
        self, record: Mapping[str, Any], selects: Sequence[str], subtree: bool
    ) -> dict[str, Any]:
        """The v2 shape of a stored run: `id` and the selected properties, lower-cased."""
        out: dict[str, Any] = {"id": record["id"]}
        for name in selects:
            out[name.lower()] = (
                None if name in _ALWAYS_NULL else self._v2_value(record, name, subtree)
            )
        return out

    def _v2_value(self, record: Mapping[str, Any], name: str, subtree: bool) -> Any:
        """One `RunSelectField` of a run."""
        if name in _STORED:
            return record[_STORED[name]]
        if name in ("RUN_TYPE", "STATUS"):
            return str(self._field_value(record, name.lower())).upper()
        if name in ("START_TIME", "END_TIME"):
            return _rfc3339(record["_start" if name == "START_TIME" else "_end"])
        if name == "LATENCY_SECONDS":
            return self._field_value(record, "latency")
        if name in _TOKEN_FIELDS:
            own = record["_usage"] or (0, 0, 0)
            totals = self._usage_totals(record) if subtree else own
            return totals[_TOKEN_FIELDS.index(name)]
        if name == "FIRST_TOKEN_TIME":
            return _rfc3339(self._first_token_time(record, subtree))
        if name in ("ERROR_PREVIEW", "INPUTS_PREVIEW", "OUTPUTS_PREVIEW"):
            return _preview(record[name.removesuffix("_PREVIEW").lower()])
        if name == "METADATA":
            return self._field_value(record, "metadata")
        if name == "MANIFEST":
            return record["serialized"] if isinstance(record["serialized"], dict) else None
        if name == "PARENT_RUN_IDS":
            return parent_ids(record["dotted_order"])
        if name == "THREAD_ID":
            return self._field_value(record, "thread_id")
        if name == "IS_ROOT":
            return record["parent_run_id"] is None
        if name == "REFERENCE_DATASET_ID":
            example = self._examples.get(record["reference_example_id"] or "")
            return example["dataset_id"] if example else None
        if name == "APP_PATH":
            return (
                f"/o/{TENANT_ID}/projects/p/{record['session_id']}/r/{record['id']}"
                f"?trace_id={record['trace_id']}&start_time={record['start_time']}"
            )
        if name == "ATTACHMENTS":
            return {}
        if name == "IS_IN_DATASET":
            return False
        return self._feedback_stats_v2(record["id"])

    def _first_token_time(self, record: Mapping[str, Any], subtree: bool) -> datetime | None:
        """When a streamed run's first `new_token` event came (in its subtree, if asked)."""
        runs = [record]
        if subtree:
            prefix = record["dotted_order"] + "."
            runs += [
                self._runs[i]
                for i in self._traces.get(record["trace_id"], [])
                if self._runs[i]["dotted_order"].startswith(prefix)
            ]
        times = [
            as_datetime(event.get("time"))
            for run in runs
            for event in run["events"] or []
            if isinstance(event, dict) and event.get("name") == "new_token"
        ]
        return min((t for t in times if t is not None), default=None)

    def _feedback_stats_v2(self, run_id: str) -> dict[str, Any] | None:
        """v2's `FeedbackStats` per key: v1's plus min, max, sources and a sample stdev."""
        by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for feedback_id in self._feedback_by_run.get(run_id, []):
            record = self._feedback[feedback_id]
            by_key[record["key"]].append(record)
        if not by_key:
            return None
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
                "stdev": statistics.stdev(scores) if len(scores) > 1 else None,
                "min": min(scores, default=None),
                "max": max(scores, default=None),
                "errors": 0,
                "values": dict(values),
                "comments": [r["comment"] for r in records if r["comment"]],
                "sources": sorted({r["feedback_source"]["type"] for r in records}),
                "contains_thread_feedback": False,
            }
        return stats


def _page_size(value: Any) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ApiError(400, f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    return value


def _selects(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ApiError(400, "selects must be a list of RunSelectField values")
    unknown = [str(field) for field in value if field not in SELECTS]
    if unknown:
        raise ApiError(400, f"unknown selects: {', '.join(unknown)}")
    return tuple(dict.fromkeys(value))


def _run_type(value: Any) -> str | None:
    if value is None:
        return None
    if value not in RUN_TYPES:
        raise ApiError(400, f"run_type must be one of {', '.join(RUN_TYPES)}, not {value!r}")
    return str(value)


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _preview(value: Any) -> str | None:
    """A short plain-text preview: the text itself, or compact JSON of anything else."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:PREVIEW_CHARS]
