"""Runs from an exported file: JSONL as the SDK writes runs, or one JSON array of them.

Roots and children come in any order; feedback sits in the runs or in a file beside them. The
selection flags of the API (time window, tags, metadata, feedback, failed runs, a limit) apply
here too, so `--file` selects what `--langsmith-project` would. Nothing in a file aborts the
sync: a line that is not JSON, not an object, has no id, is nested deeper than `MAX_DEPTH` or
is longer than `MAX_LINE_BYTES` is counted as a skip with its reason and the rest goes on. A
file that holds no run at all (a binary, a pretty-printed object) is an error, raised before
any project is touched.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tracetune.sync.errors import InvalidInputError, NotFoundError
from tracetune.sync.langsmith.from_langsmith import Skip
from tracetune.sync.langsmith.sources import SourceRun, attach_children, is_newer, start_time_of
from tracetune.sync.timestamps import naive_utc

#: Deeper than any run the SDK writes (a few dozen levels at most), shallow enough that
#: converting and serialising a run never reaches Python's recursion limit.
MAX_DEPTH = 100
MAX_LINE_BYTES = 64 * 1024 * 1024
#: A JSON array is parsed whole; beyond this, convert it to JSONL first.
MAX_ARRAY_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class RunFilters:
    """The selection the API source asks LangSmith for, applied to a file's runs."""

    start_time: datetime | None = None
    end_time: datetime | None = None
    errors_only: bool = False
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    feedback_key: str | None = None
    feedback_min_score: float | None = None
    limit: int | None = None

    def selects(self, run: dict[str, Any]) -> bool:
        """Everything but feedback and the limit, which need the whole file."""
        started = start_time_of(run)
        if self.start_time is not None and (
            started is None or naive_utc(started) < naive_utc(self.start_time)
        ):
            return False
        if self.end_time is not None and (
            started is None or naive_utc(started) >= naive_utc(self.end_time)
        ):
            return False
        if self.errors_only and not run.get("error"):
            return False
        tags = run.get("tags") or []
        if not all(tag in tags for tag in self.tags):
            return False
        metadata = (run.get("extra") or {}).get("metadata") or {}
        return all(k in metadata and str(metadata[k]) == v for k, v in self.metadata.items())

    def has_feedback(self, records: list[dict[str, Any]]) -> bool:
        if self.feedback_key is None:
            return True
        for record in records:
            if record.get("key") != self.feedback_key:
                continue
            score = record.get("score")
            if self.feedback_min_score is None or (
                isinstance(score, (int, float)) and score >= self.feedback_min_score
            ):
                return True
        return False


def _too_deep(value: Any, limit: int) -> bool:
    """Nesting depth over `limit`, measured without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _parsed(raw: bytes) -> dict[str, Any] | str:
    """One line as a run object, or why it is none (invalid UTF-8 becomes U+FFFD)."""
    try:
        record = json.loads(raw.decode("utf-8", "replace"))
    except RecursionError:
        return f"nested deeper than {MAX_DEPTH} levels"
    except ValueError:
        return "not valid JSON"
    return _as_run(record)


def _as_run(record: Any) -> dict[str, Any] | str:
    if not isinstance(record, dict):
        return "not a JSON object"
    if _too_deep(record, MAX_DEPTH):
        return f"nested deeper than {MAX_DEPTH} levels"
    if not record.get("id"):
        return "no id"
    return record


class RunFileSource:
    """An exported file of runs (roots and children in any order), with optional feedback."""

    def __init__(
        self,
        path: Path,
        feedback_path: Path | None = None,
        run_type: str | None = None,
        root_only: bool = True,
        filters: RunFilters | None = None,
    ) -> None:
        _check_readable(path, "run file")
        if feedback_path is not None:
            _check_readable(feedback_path, "feedback file")
        self.path = path
        self.feedback_path = feedback_path
        self.run_type = run_type
        self.root_only = root_only
        self.filters = filters or RunFilters()
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        self.key = f"file:{digest}" + self._selection_key()

    def _selection_key(self) -> str:
        """Watermarks are kept per selection (as on the API, the time and limit aside); the
        default selection keeps the plain file key, so existing watermarks stay valid."""

        def chosen(filters: RunFilters, run_type: str | None, root_only: bool) -> dict[str, Any]:
            fields = {k: v for k, v in asdict(filters).items() if k not in ("start_time", "limit")}
            return {**fields, "run_type": run_type, "root_only": root_only}

        mine = chosen(self.filters, self.run_type, self.root_only)
        if mine == chosen(RunFilters(), None, True):
            return ""
        payload = json.dumps(mine, sort_keys=True, default=str)
        return ":" + hashlib.sha256(payload.encode()).hexdigest()[:12]

    def _records(self, path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
        """(where, run) for each record, or (where, reason) for one that is not a run."""
        try:
            with path.open("rb") as handle:
                if _first_byte(handle) == b"[":
                    array = _json_array(path, handle)
                    if array is not None:
                        for index, item in enumerate(array):
                            yield f"{path.name}[{index}]", _as_run(item)
                        return
                yield from _lines(path, handle)
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def _read(self, path: Path, what: str) -> Iterator[tuple[str, dict[str, Any] | str]]:
        """Records, and one clear error at the end if not a single one was usable."""
        usable, problems, first_problem = 0, 0, ""
        for where, item in self._records(path):
            if isinstance(item, str):
                problems += 1
                first_problem = first_problem or f"{where}: {item}"
            else:
                usable += 1
            yield where, item
        if problems and not usable:
            raise InvalidInputError(
                f"{path} holds no {what}: {problems} lines read, none is one ({first_problem}); "
                "expected JSONL as the SDK writes it, one JSON object per line"
            )

    def _feedback(self) -> dict[str, list[dict[str, Any]]]:
        by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if self.feedback_path is not None:
            for _, record in self._read(self.feedback_path, "feedback record"):
                if isinstance(record, dict) and record.get("run_id"):
                    by_run[str(record["run_id"])].append(record)
        return by_run

    def fetch(self, since: datetime | None) -> Iterator[SourceRun | Skip]:
        selected, children = [], []
        for where, record in self._read(self.path, "LangSmith run"):
            if isinstance(record, str):
                yield Skip(where, f"malformed run: {record}")
                continue
            if record.get("parent_run_id"):
                children.append(record)
            if self._selected(record) and is_newer(record, since):
                selected.append(record)
        feedback = self._feedback()
        runs = []
        for run in selected:
            records = (run.pop("feedback", None) or []) + feedback.get(str(run["id"]), [])
            if self.filters.has_feedback(records):
                runs.append((run, records))
        runs = self._limited(runs)
        attach_children([run for run, _ in runs], children)
        for run, records in runs:
            yield SourceRun(run, records, run.get("session_name") or run.get("session_id"))

    def _limited(
        self, runs: list[tuple[dict[str, Any], list[dict[str, Any]]]]
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """The newest `limit` runs, as the API returns them, kept in file order."""
        limit = self.filters.limit
        if limit is None or len(runs) <= limit:
            return runs
        by_start = sorted(
            range(len(runs)),
            key=lambda i: naive_utc(start_time_of(runs[i][0]) or datetime.min),
            reverse=True,
        )
        keep = set(by_start[:limit])
        return [item for i, item in enumerate(runs) if i in keep]

    def _selected(self, record: dict[str, Any]) -> bool:
        """The same selection the API source asks LangSmith for (root-only, run type, ...)."""
        if self.root_only and record.get("parent_run_id"):
            return False
        if self.run_type is not None and record.get("run_type") != self.run_type:
            return False
        return self.filters.selects(record)


def _check_readable(path: Path, what: str) -> None:
    if not path.exists():
        raise NotFoundError(f"{what} {path} does not exist")
    if path.is_dir():
        raise InvalidInputError(f"{what} {path} is a directory: name the file of runs in it")


def _first_byte(handle: Any) -> bytes:
    """The first byte that is not whitespace (or b"" for an empty file); rewinds."""
    while chunk := handle.read(4096):
        stripped = chunk.lstrip()
        if stripped:
            handle.seek(0)
            return bytes(stripped[:1])
    handle.seek(0)
    return b""


def _json_array(path: Path, handle: Any) -> list[Any] | None:
    """The whole file as one JSON array, or None when it is not one (then read it as JSONL)."""
    if path.stat().st_size > MAX_ARRAY_BYTES:
        raise InvalidInputError(
            f"{path} is a JSON array over {MAX_ARRAY_BYTES >> 20} MiB: convert it to JSONL "
            f"first, e.g. jq -c '.[]' {path.name} > runs.jsonl"
        )
    try:
        value = json.loads(handle.read().decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        handle.seek(0)
        return None
    if not isinstance(value, list):
        handle.seek(0)
        return None
    return value


def _lines(path: Path, handle: Any) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """One record per non-empty line; an over-long line is skipped without reading it whole."""
    number = 0
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            while raw and not raw.endswith(b"\n"):
                raw = handle.readline(1 << 20)
            yield f"{path.name}:{number}", f"line longer than {MAX_LINE_BYTES >> 20} MiB"
        elif raw.strip():
            yield f"{path.name}:{number}", _parsed(raw)
