"""A local stand-in of the LangSmith HTTP API, for the real, unmodified `langsmith` SDK.

Point `LANGSMITH_ENDPOINT` (or `Client(api_url=...)`) at `LangSmithStandIn.url` and the SDK
traces into it, reads runs back with `runs.query()` or `list_runs`, and manages projects,
datasets, examples and feedback. The request and response shapes follow what
`langsmith/client.py` and the generated `langsmith/resources/` send and parse (checked
against langsmith 0.15.1):

- ingest: `POST /runs`, `PATCH /runs/{id}`, `POST /runs/batch` and `POST /runs/multipart`
  (`post.<id>`, `post.<id>.inputs`, `patch.<id>.outputs`, `feedback.<id>`..., plain or
  zstd-compressed); `/info` says which of batch or multipart the SDK should use;
- reading: v1's `POST /runs/query` with cursor pagination and LangSmith's filter language
  (`and(eq(run_type, "llm"), gt(latency, 2))`...), `GET /runs/{id}`, and v2's
  `POST /api/v2/runs/query` as `client.runs.query()` sends it (`selects`, start-time window,
  `next_cursor` pages; switched off with `runs_v2=False` to play an older self-hosted one);
- projects (`/sessions`), datasets, examples (`/examples`, `/examples/bulk` and the
  multipart `/v1/platform/datasets/{id}/examples`), feedback (`/feedback`);
- auth: every route but `/info` needs the `x-api-key` header, else 401 like the real API.

Unlike the real service, ingestion is synchronous: once `Client.flush()` returns, the runs
can be read. Everything lives in one `RunStore`, in memory; `LangSmithStandIn.requests`
records each request's method, path and encoding, so tests can tell which endpoint the SDK
chose.

One module per part: `wire` (errors, JSON, times, ids), `filters` (the filter language),
`run_values` (what the API computes from a run), `store/` (one class per resource over one
shared state), `routes/` (one module per resource), `app` (the Flask app) and `server`
(`LangSmithStandIn`).
"""

from standins.langsmith.app import RequestRecord, create_app
from standins.langsmith.filters import FilterError, compile_filter
from standins.langsmith.run_values import RUN_FIELDS
from standins.langsmith.server import LangSmithStandIn
from standins.langsmith.store import RunStore
from standins.langsmith.store.queries import MAX_PAGE
from standins.langsmith.wire import ApiError

__all__ = [
    "MAX_PAGE",
    "RUN_FIELDS",
    "ApiError",
    "FilterError",
    "LangSmithStandIn",
    "RequestRecord",
    "RunStore",
    "compile_filter",
    "create_app",
]
