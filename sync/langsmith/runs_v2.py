"""Runs read through LangSmith's v2 run query: `runs.query()`, `POST /api/v2/runs/query`.

langsmith 0.15's `Client.runs` is the asynchronous resource; the sync reads synchronously, so
it calls the same `runs.query()` on the SDK's generated synchronous client, `langsmith.Langsmith`.
Its pager fetches the next page (`next_cursor`) only when the previous one is used up, so a
query holds one page in memory however many runs it yields. Each v2 run (upper-case
`run_type`, `project_id`, `parent_run_ids`) is turned into the v1 run every source yields.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import langsmith
from langsmith import schemas
from langsmith.types import Run as V2Run

from tracetune.sync.langsmith.run_query import EARLIEST, RunQuery, aware_utc
from tracetune.sync.langsmith.sources import run_as_dict

#: v2's largest page.
MAX_PAGE_SIZE = 1000

#: v1 field names as v2 `selects` them; `extra` also asks for `METADATA`, kept apart in v2.
_SELECTS = {
    "session_id": ("PROJECT_ID",),
    "parent_run_id": ("PARENT_RUN_IDS",),
    "extra": ("EXTRA", "METADATA"),
}


def query_v2(
    api: langsmith.Langsmith, query: RunQuery, fields: tuple[str, ...], page_size: int
) -> Iterator[dict[str, Any]]:
    """The query's runs, newest first, page by page.

    The first page is requested before the first run is yielded, so a LangSmith without v2
    fails here, at the call, and the caller can read through v1 instead.
    """
    pager = api.runs.query(**_arguments(query, fields, min(page_size, MAX_PAGE_SIZE)))
    runs = (as_run_dict(run) for page in pager.iter_pages() for run in page.items)
    return islice(runs, query.limit) if query.limit is not None else runs


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
    names = [name for field in fields for name in _SELECTS.get(field, (field.upper(),))]
    return list(dict.fromkeys(names))


def as_run_dict(run: V2Run) -> dict[str, Any]:
    """A v2 run as the v1 run dict every source yields (`langsmith.schemas.Run`, dumped)."""
    extra = dict(run.extra or {})
    if run.metadata is not None and "metadata" not in extra:
        extra["metadata"] = run.metadata
    feedback = run.feedback_stats
    fields: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "run_type": run.run_type.lower() if run.run_type else None,
        "status": run.status.lower() if run.status else None,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "error": run.error,
        "extra": extra or None,
        "tags": run.tags,
        "trace_id": run.trace_id,
        "parent_run_id": run.parent_run_ids[-1] if run.parent_run_ids else None,
        "parent_run_ids": run.parent_run_ids,
        "session_id": run.project_id,
        "dotted_order": run.dotted_order,
        "reference_example_id": run.reference_example_id,
        "feedback_stats": (
            {key: stats.model_dump(exclude_none=True) for key, stats in feedback.items()}
            if feedback
            else None
        ),
    }
    return run_as_dict(schemas.Run(**{k: v for k, v in fields.items() if v is not None}))
