"""Runs read through LangSmith's v2 run query: `runs.query()`, `POST /api/v2/runs/query`.

langsmith 0.15's `Client.runs` is the asynchronous resource; the sync reads synchronously, so
it calls the same `runs.query()` on the SDK's generated synchronous client, `langsmith.Langsmith`,
through `with_raw_response`: building the SDK's response models took longer than the whole
rest of reading a run (measured on 10,000 runs), and each run becomes the v1 run every source
yields anyway, built straight from the JSON (`run_dict`). Pages follow
`next_cursor` one at a time, so a query holds one page in memory however many runs it yields.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import langsmith
from langsmith.resources.runs import RunsResource

from tracetune.sync.langsmith.run_dict import run_dict
from tracetune.sync.langsmith.run_query import EARLIEST, RunQuery, aware_utc

#: v2's largest page.
MAX_PAGE_SIZE = 1000

#: Fields v1 and v2 name alike.
_SAME_NAME = (
    "id", "name", "start_time", "end_time", "inputs", "outputs", "error", "extra", "tags",
    "trace_id", "parent_run_ids", "dotted_order", "reference_example_id", "feedback_stats",
)  # fmt: skip
#: v1 field names that v2 says otherwise. `EXTRA` carries the metadata, as in v1: the SDK's
#: own v2 readers select it and not `METADATA`, and read the metadata from it.
_SELECTS = {"session_id": "PROJECT_ID", "parent_run_id": "PARENT_RUN_IDS"}


def query_v2(
    api: langsmith.Langsmith, query: RunQuery, fields: tuple[str, ...], page_size: int
) -> Iterator[dict[str, Any]]:
    """The query's runs, newest first, page by page.

    The first page is requested before this returns, so a LangSmith without v2 fails here,
    at the call, and the caller can read through v1 instead.
    """
    arguments = _arguments(query, fields, min(page_size, MAX_PAGE_SIZE))
    runs = _runs(api.runs, arguments, _page(api.runs, arguments))
    return islice(runs, query.limit) if query.limit is not None else runs


def _page(runs: RunsResource, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = runs.with_raw_response.query(**arguments).json()
    return answer if isinstance(answer, dict) else {}


def _runs(
    resource: RunsResource, arguments: dict[str, Any], page: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    while True:
        for run in page.get("items") or []:
            yield as_run_dict(run)
        cursor = page.get("next_cursor")
        if not page.get("items") or not cursor:
            return
        page = _page(resource, {**arguments, "cursor": cursor})


def _arguments(query: RunQuery, fields: tuple[str, ...], page_size: int) -> dict[str, Any]:
    if query.limit is not None:
        page_size = min(page_size, query.limit)
    arguments: dict[str, Any] = {
        "project_ids": [query.project_id],
        "selects": selects(fields),
        "min_start_time": aware_utc(query.start_time) if query.start_time else EARLIEST,
        "page_size": page_size,
    }
    optional = {
        "max_start_time": aware_utc(query.end_time) if query.end_time else None,
        "run_type": query.run_type.upper() if query.run_type else None,
        "is_root": query.is_root,
        "has_error": query.error,
        "filter": query.filter,
    }
    arguments.update({name: value for name, value in optional.items() if value is not None})
    return arguments


def selects(fields: tuple[str, ...]) -> list[str]:
    """v2's `selects` for v1 field names."""
    return [_SELECTS.get(field, field.upper()) for field in fields]


def as_run_dict(run: dict[str, Any]) -> dict[str, Any]:
    """A v2 run (`langsmith.types.Run` as JSON) as the v1 run dict every source yields."""
    return run_dict(v1_fields(run))


def v1_fields(run: dict[str, Any]) -> dict[str, Any]:
    """A v2 run's fields under their v1 names and in v1's values (`None`: not set)."""
    parents = run.get("parent_run_ids")
    return {
        **{name: run.get(name) for name in _SAME_NAME},
        "run_type": run["run_type"].lower() if run.get("run_type") else None,
        "status": run["status"].lower() if run.get("status") else None,
        "parent_run_id": parents[-1] if parents else None,
        "session_id": run.get("project_id"),
    }
