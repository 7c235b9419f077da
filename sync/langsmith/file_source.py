"""Runs from an exported JSONL file: roots and children in any order, feedback beside them."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from tracetune.sync.errors import NotFoundError
from tracetune.sync.langsmith.from_langsmith import Skip
from tracetune.sync.langsmith.sources import SourceRun, attach_children, is_newer


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
        for run in attach_children(selected, children):
            embedded = run.pop("feedback", None) or []
            project = run.get("session_name") or run.get("session_id")
            yield SourceRun(run, embedded + feedback.get(str(run["id"]), []), project)

    def _selected(self, record: dict[str, Any]) -> bool:
        """The same selection `list_runs(is_root=..., run_type=...)` makes on the API."""
        if self.root_only and record.get("parent_run_id"):
            return False
        return self.run_type is None or record.get("run_type") == self.run_type
