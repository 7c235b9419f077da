"""One run query, in the terms LangSmith's v2 run query and its v1 predecessor share.

The source decides what to read (`RunQuery`) and which fields it needs (`ROOT_FIELDS`,
`CHILD_FIELDS`); `runs_v2` and `runs_v1` say it in each API's words. Field names are the v1
run's, which is also the shape every source yields (see `sources.run_as_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

#: The start of time for a query: v2 reads only the last day unless told otherwise.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

#: What the sync reads of a root run: its conversation, its trace and its feedback summary.
ROOT_FIELDS = (
    "id", "name", "run_type", "status", "start_time", "end_time", "inputs", "outputs", "error",
    "extra", "tags", "trace_id", "parent_run_id", "session_id", "dotted_order",
    "reference_example_id", "feedback_stats",
)  # fmt: skip
#: What the sync reads of a retriever child run: the documents it returned, in trace order.
CHILD_FIELDS = (
    "id", "name", "run_type", "start_time", "end_time", "outputs", "trace_id", "parent_run_id",
    "session_id", "dotted_order",
)  # fmt: skip
#: What the sync reads of an agent's model-call child run: the system prompt it was sent
#: (agents add it per call, not to their state) and the tools it was offered.
MODEL_CALL_FIELDS = (*CHILD_FIELDS, "inputs", "extra")


@dataclass(frozen=True)
class RunQuery:
    """Runs of one project: each set field narrows the selection, `None` leaves it open.

    `start_time` is inclusive and `end_time` bounds when runs started; `limit` caps how many
    runs the query yields in all, across pages.
    """

    project_id: str
    run_type: str | None = None
    is_root: bool | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: bool | None = None
    filter: str | None = None
    limit: int | None = None


def aware_utc(value: datetime) -> datetime:
    """A time as both APIs want it, with its zone; naive times are UTC, as LangSmith's are."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
