"""Runs read live from the LangSmith API through the `langsmith` SDK, with children and feedback.

Everything streams: root runs come page by page (`run_reader`), and each batch of roots gets
its retriever child runs and its feedback before the next batch is read. Children are
queried by the batch's trace ids within the batch's start-time window, so memory holds one
batch however many runs a sync reads.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain, islice
from typing import Any, TypeVar

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.langsmith.client import LangSmithClients
from tracetune.sync.langsmith.from_langsmith import Skip
from tracetune.sync.langsmith.run_query import (
    CHILD_FIELDS,
    MODEL_CALL_FIELDS,
    ROOT_FIELDS,
    RunQuery,
)
from tracetune.sync.langsmith.run_reader import RunReader
from tracetune.sync.langsmith.sources import SourceRun, attach_children, run_as_dict
from tracetune.sync.timestamps import naive_utc

#: LangSmith's run types (`--run-type`); v2 refuses any other.
RUN_TYPES = ("llm", "chain", "tool", "retriever", "embedding", "prompt", "parser")
#: Trace ids per child-run query, so one query serves a default batch of roots: each query
#: costs a round trip, and a filter of 500 trace ids is about 28 KB of request body.
TRACES_PER_QUERY = 500
#: Room after a root's end for its children's start times (clocks and rounding).
CHILD_MARGIN = timedelta(seconds=1)

T = TypeVar("T")


@dataclass
class RunSelection:
    """What to read from the LangSmith API; each field is a `tracetune sync` option."""

    projects: list[str]
    run_type: str | None = None
    root_only: bool = True
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: bool | None = False
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    feedback_key: str | None = None
    feedback_min_score: float | None = None
    filter: str | None = None
    limit: int | None = None

    def filter_query(self) -> str | None:
        """LangSmith's filter language for the selections the run query has no argument for."""
        clauses = [f"has(tags, {json.dumps(tag)})" for tag in self.tags]
        for key, value in self.metadata.items():
            clauses.append(
                f"and(eq(metadata_key, {json.dumps(key)}), eq(metadata_value, {json.dumps(value)}))"
            )
        if self.feedback_key:
            clause = f"eq(feedback_key, {json.dumps(self.feedback_key)})"
            if self.feedback_min_score is not None:
                clause = f"and({clause}, gte(feedback_score, {self.feedback_min_score}))"
            clauses.append(clause)
        if self.filter:
            clauses.append(self.filter)
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else f"and({', '.join(clauses)})"

    def key(self) -> str:
        payload = json.dumps(
            {k: v for k, v in self.__dict__.items() if k not in ("start_time", "limit")},
            sort_keys=True,
            default=str,
        )
        return "api:" + hashlib.sha256(payload.encode()).hexdigest()[:12]


class LangSmithApiSource:
    """Runs read live through the `langsmith` SDK, with retriever children and feedback."""

    def __init__(self, clients: LangSmithClients, selection: RunSelection, page: int = 500) -> None:
        if not selection.projects:
            raise InvalidInputError("name at least one LangSmith project (--langsmith-project)")
        if selection.run_type is not None and selection.run_type.lower() not in RUN_TYPES:
            raise InvalidInputError(
                f"--run-type must be one of {', '.join(RUN_TYPES)}, not {selection.run_type!r}"
            )
        self.clients = clients
        self.selection = selection
        self.page = page
        self.reader = RunReader(clients, page_size=page)
        self.key = selection.key()

    def _start(self, since: datetime | None) -> datetime | None:
        candidates = [t for t in (since, self.selection.start_time) if t is not None]
        return max(candidates, key=naive_utc) if candidates else None

    def fetch(self, since: datetime | None) -> Iterator[SourceRun | Skip]:
        sel = self.selection
        start = self._start(since)
        for project in sel.projects:
            project_id = str(self.clients.client.read_project(project_name=project).id)
            query = RunQuery(
                project_id,
                run_type=sel.run_type.lower() if sel.run_type else None,
                is_root=True if sel.root_only else None,
                start_time=start,
                end_time=sel.end_time,
                error=sel.error,
                filter=sel.filter_query(),
                limit=sel.limit,
            )
            for batch in _chunks(self.reader.runs(query, ROOT_FIELDS), self.page):
                yield from self._complete(project, project_id, batch)

    def _complete(
        self, project: str, project_id: str, runs: list[dict[str, Any]]
    ) -> Iterator[SourceRun]:
        if self.selection.root_only:
            agents = [run for run in runs if _holds_messages(run)]
            children = chain(
                self._children(project_id, runs, "retriever", CHILD_FIELDS),
                self._children(project_id, agents, "llm", MODEL_CALL_FIELDS),
            )
            attach_children(runs, children)
        feedback = self._feedback(runs)
        for run in runs:
            yield SourceRun(run, feedback.get(str(run["id"]), []), project)

    def _children(
        self,
        project_id: str,
        roots: list[dict[str, Any]],
        run_type: str,
        fields: tuple[str, ...],
    ) -> Iterator[dict[str, Any]]:
        """The `run_type` runs of these roots' traces, up to `TRACES_PER_QUERY` traces a query.

        Children start within their root's run, so each query is bounded by the roots'
        earliest start and latest end (open-ended while a root is still running).
        """
        for chunk in _chunks(roots, TRACES_PER_QUERY):
            starts = [_time(root, "start_time") for root in chunk]
            ends = [_time(root, "end_time") for root in chunk]
            traces = ", ".join(
                f"eq(trace_id, {json.dumps(str(root.get('trace_id') or root['id']))})"
                for root in chunk
            )
            query = RunQuery(
                project_id,
                run_type=run_type,
                is_root=False,
                start_time=min((s for s in starts if s), default=None, key=naive_utc),
                end_time=(
                    max((e for e in ends if e), key=naive_utc) + CHILD_MARGIN if all(ends) else None
                ),
                filter=f"or({traces})",
            )
            yield from self.reader.runs(query, fields)

    def _feedback(self, runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Feedback records of the rated runs, a hundred runs per request."""
        feedback: dict[str, list[dict[str, Any]]] = defaultdict(list)
        run_ids = [str(r["id"]) for r in runs if r.get("feedback_stats")]
        for offset in range(0, len(run_ids), 100):
            for record in self.clients.client.list_feedback(run_ids=run_ids[offset : offset + 100]):
                item = run_as_dict(record)
                feedback[str(item.get("run_id"))].append(item)
        return feedback


def _holds_messages(run: dict[str, Any]) -> bool:
    """An agent or graph root: its state (outputs) is a list of messages."""
    outputs = run.get("outputs")
    return isinstance(outputs, dict) and isinstance(outputs.get("messages"), list)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _time(run: dict[str, Any], name: str) -> datetime | None:
    value = run.get(name)
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None
