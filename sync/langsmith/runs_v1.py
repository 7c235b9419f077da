"""Runs read through v1's `POST /runs/query`, for a self-hosted LangSmith without the v2 query.

The SDK's v1 reader is deprecated (to be removed after 2027-01-31), so the sync sends the
same request it did, through the SDK's `request_with_retries` (auth, retries, errors), and
follows the cursors itself: one page in memory at a time, like the v2 path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import langsmith
from langsmith import schemas

from tracetune.sync.langsmith.run_query import RunQuery, aware_utc
from tracetune.sync.langsmith.sources import run_as_dict

#: v1's largest page.
MAX_PAGE_SIZE = 100


def query_v1(
    client: langsmith.Client, query: RunQuery, fields: tuple[str, ...], page_size: int
) -> Iterator[dict[str, Any]]:
    """The query's runs, newest first, page by page."""
    body = _body(query, fields, min(page_size, MAX_PAGE_SIZE))
    yielded = 0
    while True:
        response = client.request_with_retries(
            "POST", "/runs/query", request_kwargs={"data": json.dumps(body)}
        )
        answer = response.json() or {}
        for run in answer.get("runs") or []:
            if query.limit is not None and yielded >= query.limit:
                return
            yield run_as_dict(schemas.Run(**run))
            yielded += 1
        cursor = (answer.get("cursors") or {}).get("next")
        if not answer.get("runs") or not cursor:
            return
        body["cursor"] = cursor


def _body(query: RunQuery, fields: tuple[str, ...], page_size: int) -> dict[str, Any]:
    optional = {
        "run_type": query.run_type,
        "is_root": query.is_root,
        "start_time": aware_utc(query.start_time).isoformat() if query.start_time else None,
        "end_time": aware_utc(query.end_time).isoformat() if query.end_time else None,
        "error": query.error,
        "filter": query.filter,
    }
    body: dict[str, Any] = {"session": [query.project_id], "select": list(fields)}
    body["limit"] = min(page_size, query.limit) if query.limit is not None else page_size
    body.update({name: value for name, value in optional.items() if value is not None})
    return body
