"""Where runs come from: the LangSmith API, a LangSmith dataset, or an exported JSONL file.

Every source yields `SourceRun`s: a root run (dict, as the SDK returns it) with its retriever
child runs attached as `child_runs`, plus its feedback records. Per-line problems in a file are
yielded as skips so the summary counts them; a source that cannot be read at all raises.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from tracetune.sync.errors import InvalidInputError, NotFoundError
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


def _start_time(run: dict[str, Any]) -> datetime | None:
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
    started = _start_time(run)
    return started is None or naive_utc(started) >= naive_utc(since)


def _attach_children(
    roots: list[dict[str, Any]], children: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for child in children:
        by_trace[str(child.get("trace_id"))].append(child)
    for root in roots:
        root["child_runs"] = by_trace.get(str(root.get("trace_id") or root.get("id")), [])
    return roots


class RunFileSource:
    """A JSONL file of runs as the SDK returns them (roots and children in any order)."""

    def __init__(
        self,
        path: Path,
        feedback_path: Path | None = None,
        run_type: str | None = None,
        root_only: bool = True,
    ) -> None:
        if not path.exists():
            raise NotFoundError(f"run file {path} does not exist")
        self.path = path
        self.feedback_path = feedback_path
        self.run_type = run_type
        self.root_only = root_only
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        self.key = f"file:{digest}"

    def _lines(self, path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8", "replace"))
                except json.JSONDecodeError:
                    yield number, None
                    continue
                yield number, record if isinstance(record, dict) else None

    def _feedback(self) -> dict[str, list[dict[str, Any]]]:
        by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if self.feedback_path is not None:
            if not self.feedback_path.exists():
                raise NotFoundError(f"feedback file {self.feedback_path} does not exist")
            for _, record in self._lines(self.feedback_path):
                if record and record.get("run_id"):
                    by_run[str(record["run_id"])].append(record)
        return by_run

    def fetch(self, since: datetime | None) -> Iterator[SourceRun | Skip]:
        selected, children = [], []
        for number, record in self._lines(self.path):
            if record is None or not record.get("id"):
                yield Skip(f"{self.path.name}:{number}", "malformed run: not a JSON run object")
                continue
            if record.get("parent_run_id"):
                children.append(record)
            if self._selected(record) and is_newer(record, since):
                selected.append(record)
        feedback = self._feedback()
        for run in _attach_children(selected, children):
            embedded = run.pop("feedback", None) or []
            project = run.get("session_name") or run.get("session_id")
            yield SourceRun(run, embedded + feedback.get(str(run["id"]), []), project)

    def _selected(self, record: dict[str, Any]) -> bool:
        """The same selection `list_runs(is_root=..., run_type=...)` makes on the API."""
        if self.root_only and record.get("parent_run_id"):
            return False
        return self.run_type is None or record.get("run_type") == self.run_type


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
        for root in _attach_children(roots, retrievers):
            yield SourceRun(root, feedback.get(str(root["id"]), []), project)


class DatasetSource:
    """Examples of a LangSmith dataset (inputs / outputs) read as if they were runs."""

    def __init__(self, client: Any, dataset_name: str) -> None:
        self.client = client
        self.dataset_name = dataset_name
        self.key = f"dataset:{dataset_name}"

    def fetch(self, since: datetime | None) -> Iterator[SourceRun | Skip]:
        for example in self.client.list_examples(dataset_name=self.dataset_name):
            data = run_as_dict(example)
            run = {
                "id": str(data["id"]),
                "trace_id": str(data["id"]),
                "run_type": "example",
                "name": self.dataset_name,
                "inputs": data.get("inputs") or {},
                "outputs": data.get("outputs") or {},
                "start_time": data.get("created_at"),
                "end_time": data.get("modified_at") or data.get("created_at"),
                "extra": {"metadata": data.get("metadata") or {}},
            }
            if is_newer(run, since):
                yield SourceRun(run, [], f"dataset:{self.dataset_name}")
