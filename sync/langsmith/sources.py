"""What every source yields, and the helpers they share.

Runs come from the LangSmith API (`api_source`), a LangSmith dataset (`dataset_source`) or an
exported JSONL file (`file_source`). Every source yields `SourceRun`s: a root run (dict, as
the SDK returns it) with its retriever child runs attached as `child_runs`, plus its feedback
records. Per-item problems are yielded as skips so the summary counts them; a source that
cannot be read at all raises.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from tracetune.sync.langsmith.from_langsmith import Skip
from tracetune.sync.timestamps import naive_utc

BUNDLED_SAMPLE = Path(__file__).parents[1] / "data" / "sample_runs.jsonl"


@dataclass
class SourceRun:
    run: dict[str, Any]
    feedback: list[dict[str, Any]] = field(default_factory=list)
    project: str | None = None


class RunSource(Protocol):
    """A seam: anything that yields root runs newer than a watermark."""

    key: str

    def fetch(self, since: datetime | None) -> Iterator[SourceRun | Skip]: ...


def run_as_dict(run: Any) -> dict[str, Any]:
    """A `langsmith.schemas.Run` (or a dict already) as plain JSON-compatible data."""
    if isinstance(run, dict):
        return run
    if hasattr(run, "model_dump"):
        return dict(run.model_dump(mode="json"))
    return dict(json.loads(run.json()))


def start_time_of(run: dict[str, Any]) -> datetime | None:
    value = run.get("start_time")
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=None)
    return value if isinstance(value, datetime) else None


def is_newer(run: dict[str, Any], since: datetime | None) -> bool:
    if since is None:
        return True
    started = start_time_of(run)
    return started is None or naive_utc(started) >= naive_utc(since)


def attach_children(
    roots: list[dict[str, Any]], children: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for child in children:
        by_trace[str(child.get("trace_id"))].append(child)
    for root in roots:
        root["child_runs"] = by_trace.get(str(root.get("trace_id") or root.get("id")), [])
    return roots
