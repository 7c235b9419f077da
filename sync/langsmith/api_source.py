"""Runs read live from the LangSmith API through the `langsmith` SDK, with children and feedback."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.langsmith.from_langsmith import Skip
from tracetune.sync.langsmith.sources import SourceRun, attach_children, run_as_dict
from tracetune.sync.timestamps import naive_utc


@dataclass
class RunSelection:
    """What to read from the LangSmith API; each field maps onto `Client.list_runs`."""

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
        """LangSmith's filter language for the selections `list_runs` has no argument for."""
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

    def __init__(self, client: Any, selection: RunSelection, page: int = 500) -> None:
        if not selection.projects:
            raise InvalidInputError("name at least one LangSmith project (--langsmith-project)")
        self.client = client
        self.selection = selection
        self.page = page
        self.key = selection.key()

    def _start(self, since: datetime | None) -> datetime | None:
        candidates = [t for t in (since, self.selection.start_time) if t is not None]
        return max(candidates, key=naive_utc) if candidates else None

    def _list_runs(self, **query: Any) -> Iterator[Any]:
        """`Client.list_runs`, quiet about its deprecation.

        langsmith 0.15 deprecates `list_runs` (removal announced after 2027-01-31) for
        `client.runs.query()` on `/api/v2/runs/query`; until that endpoint is verified against
        LangSmith, the documented `/runs/query` stays in use and users are spared the warning
        on every sync (the README records the migration).
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"list_runs\(\) is deprecated")
            yield from self.client.list_runs(**query)

    def fetch(self, since: datetime | None) -> Iterator[SourceRun | Skip]:
        sel = self.selection
        start = self._start(since)
        for project in sel.projects:
            retrievers = self._retriever_runs(project, start) if sel.root_only else []
            runs = self._list_runs(
                project_name=project,
                run_type=sel.run_type,
                is_root=True if sel.root_only else None,
                start_time=start,
                end_time=sel.end_time,
                error=sel.error,
                filter=sel.filter_query(),
                limit=sel.limit,
            )
            batch: list[dict[str, Any]] = []
            for run in runs:
                batch.append(run_as_dict(run))
                if len(batch) >= self.page:
                    yield from self._complete(project, batch, retrievers)
                    batch = []
            if batch:
                yield from self._complete(project, batch, retrievers)

    def _retriever_runs(self, project: str, start: datetime | None) -> list[dict[str, Any]]:
        """Retriever runs of the same window in one paginated query, joined later by trace."""
        runs = self._list_runs(project_name=project, run_type="retriever", start_time=start)
        return [run_as_dict(run) for run in runs]

    def _complete(
        self, project: str, roots: list[dict[str, Any]], retrievers: list[dict[str, Any]]
    ) -> Iterator[SourceRun]:
        feedback: dict[str, list[dict[str, Any]]] = defaultdict(list)
        run_ids = [str(r["id"]) for r in roots if r.get("feedback_stats")]
        for offset in range(0, len(run_ids), 100):
            for record in self.client.list_feedback(run_ids=run_ids[offset : offset + 100]):
                item = run_as_dict(record)
                feedback[str(item.get("run_id"))].append(item)
        for root in attach_children(roots, retrievers):
            yield SourceRun(root, feedback.get(str(root["id"]), []), project)
