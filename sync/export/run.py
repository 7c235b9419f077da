"""Export: reviewed Label Studio tasks → fine-tune files, a manifest and validation reports.

One function, `run_export`, runs the whole pipeline; the RQ job and `tracetune export --now`
both call it. It streams: tasks are read a page at a time and each example is written as its
task is read, so memory stays flat however large the project. The writes go through a staging
folder (see `export_writer`), so a run is all-or-nothing.
"""

from __future__ import annotations

import secrets
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.export.decisions import RULE_DESCRIPTION, ReviewedTask, decide
from tracetune.sync.export.examples import ExampleBuilder, PreferenceExample, SftExample
from tracetune.sync.export.filters import ExportFilters, TaskFilter
from tracetune.sync.export.spill import Spill
from tracetune.sync.export.to_openai import preference_line, sft_line
from tracetune.sync.export.to_trl import preference_row, sft_row
from tracetune.sync.export.validation import (
    RecordValidator,
    ValidationReport,
    token_limit_for,
)
from tracetune.sync.export.writer import (
    ExportFolder,
    Family,
    FileKind,
    JsonlWriter,
    Split,
    WrittenFile,
    split_of,
    training_file_name,
    write_json_with_list,
    write_parquet_from_jsonl,
)
from tracetune.sync.label_studio.task_reader import TaskReader
from tracetune.sync.settings import Settings
from tracetune.sync.token_count import TokenCounter, encoding_name_for, token_counter

FORMATS: tuple[Family, ...] = ("openai", "trl")
MANIFEST = "manifest.json"


def new_export_id() -> str:
    """Sortable and unique: `x-<UTC timestamp>-<random>`; also the RQ job id of a queued export."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"x-{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how; plain data so it can travel inside an RQ job."""

    project: str
    filters: ExportFilters = field(default_factory=ExportFilters)
    formats: tuple[Family, ...] = FORMATS
    validation_fraction: float = 0.1
    seed: str = "tracetune"
    model: str | None = None
    export_id: str | None = None


@dataclass
class ExportResult:
    """The committed export; `manifest` is its manifest without the lineage rows (one per
    example: they are streamed to `manifest.json` and read from there)."""

    export_id: str
    path: Path
    manifest: dict[str, Any]

    @property
    def valid(self) -> bool:
        return all(report["ok"] for report in self.manifest["validation"].values())


_Converter = Callable[[Any], dict[str, Any]]
_FAMILIES: dict[tuple[str, FileKind], _Converter] = {
    ("openai", "sft"): sft_line,
    ("openai", "preference"): preference_line,
    ("trl", "sft"): sft_row,
    ("trl", "preference"): preference_row,
}
#: The sets in the order the manifest lists them.
SETS: tuple[tuple[FileKind, Split], ...] = (
    ("sft", "train"),
    ("sft", "validation"),
    ("preference", "train"),
    ("preference", "validation"),
)
Example = SftExample | PreferenceExample


class _SetFiles:
    """The files of one set (`sft.train`, ...): one per format, opened at its first example
    (a set without examples has no files), validated as written, and its lineage rows,
    which wait on disk for the manifest."""

    def __init__(
        self,
        folder: Path,
        spill_dir: Path,
        kind: FileKind,
        split: Split,
        request: ExportRequest,
        counter: TokenCounter,
    ) -> None:
        self.folder, self.kind, self.split, self.request = folder, kind, split, request
        self.name = f"{kind}.{split}"
        self.counter = counter
        self.lineage: Spill[dict[str, Any]] = Spill(spill_dir / f"lineage.{self.name}")
        self._files: dict[Family, JsonlWriter] = {}
        self._validators: dict[Family, RecordValidator] = {}

    def add(self, example: Example) -> None:
        if not self._files:
            self._open()
        for family, writer in self._files.items():
            line = writer.write(_FAMILIES[(family, self.kind)](example))
            if family in self._validators:
                self._validators[family].add(line)
        self.lineage.append(
            {
                "set": self.name,
                "line": self.lineage.count + 1,
                "group": example.group,
                **example.lineage.as_dict(),
            }
        )

    def _open(self) -> None:
        for family in self.request.formats:
            name = training_file_name(family, self.kind, self.split)
            self._files[family] = JsonlWriter(self.folder / name)
            if family == "openai":
                # The validation split is checked for shape and tokens, not for a minimum size.
                self._validators[family] = RecordValidator(
                    name,
                    self.kind,
                    self.counter,
                    max_tokens=token_limit_for(self.request.model),
                    min_examples=10 if self.split == "train" else 1,
                )

    def close(self) -> tuple[list[WrittenFile], dict[str, ValidationReport]]:
        written = []
        for family, writer in self._files.items():
            file = writer.close()
            written.append(file)
            if family != "openai":
                parquet_name = training_file_name(family, self.kind, self.split, "parquet")
                written.append(write_parquet_from_jsonl(self.folder / parquet_name, writer.path))
        reports = {v.report.name: v.finish() for v in self._validators.values()}
        return written, reports

    def discard(self) -> None:
        for writer in self._files.values():
            writer.discard()
        self.lineage.close()


class _TaskCounts:
    def __init__(self) -> None:
        self.tasks = 0
        self.decisions: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.rules: Counter[str] = Counter()

    def add(self, task: ReviewedTask) -> None:
        self.tasks += 1
        self.decisions[task.decision.value] += 1
        self.rules[task.rule.value] += 1
        if task.reason is not None:
            self.reasons[task.reason] += 1

    def as_dict(self, kept_rejected: int) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "by_decision": dict(sorted(self.decisions.items())),
            "excluded_by_reason": dict(sorted(self.reasons.items())),
            "by_rule": dict(sorted(self.rules.items())),
            "rejected_kept_as_rejected_side": kept_rejected,
        }


def _in_id_order(tasks: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Tasks as listed, in ascending id order (how Label Studio pages them). A task listed
    again right after itself (pages shift when a task is deleted meanwhile) counts once."""
    previous: int | None = None
    for task in tasks:
        task_id = int(task["id"])
        if previous is not None and task_id <= previous:
            if task_id == previous:
                continue
            raise InvalidInputError(
                f"tasks to export must come in ascending id order: {task_id} after {previous}"
            )
        previous = task_id
        yield task


def _manifest(
    export_id: str,
    project: Mapping[str, Any],
    request: ExportRequest,
    counter: TokenCounter,
    counts: dict[str, Any],
    examples: dict[str, int],
    written: Mapping[str, WrittenFile],
    reports: Mapping[str, ValidationReport],
) -> dict[str, Any]:
    """The manifest but its lineage (which `write_json_with_list` streams in last)."""
    return {
        "export_id": export_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "project": dict(project),
        "request": {
            "formats": list(request.formats),
            "validation_fraction": request.validation_fraction,
            "seed": request.seed,
            "model": request.model,
            "filters": request.filters.describe(),
        },
        "rule": RULE_DESCRIPTION,
        "counts": counts,
        "examples": examples,
        "tokens": {
            "method": counter.method,
            "exact": counter.exact,
            "limit_per_example": token_limit_for(request.model),
            **{name: report.token_stats() for name, report in reports.items()},
        },
        "files": {name: file.as_dict() for name, file in sorted(written.items())},
        "validation": {
            name: {"ok": report.ok, "examples": report.examples, "summary": report.summary()}
            for name, report in sorted(reports.items())
        },
    }


def export_tasks(
    tasks: Iterable[dict[str, Any]],
    request: ExportRequest,
    out_root: Path,
    export_id: str,
    project: Mapping[str, Any],
) -> ExportResult:
    """The pure part of an export over task JSON in id order: decide, filter, write.

    One task at a time: each gives its decision and SFT example as it is read, written to
    every format and validated at once; what needs every task first (rejected answers'
    pairs, near-duplicates among rejected tasks, the pair files in id order, the manifest's
    lineage) waits on disk in the staging folder, so memory does not grow with the project.
    """
    folder = ExportFolder(out_root, export_id)
    staging = folder.open()
    counter = token_counter(encoding_name_for(request.model))
    with tempfile.TemporaryDirectory(dir=staging, prefix=".spill-") as spill:
        spill_dir = Path(spill)
        sets = {
            (kind, split): _SetFiles(staging, spill_dir, kind, split, request, counter)
            for kind, split in SETS
        }
        builder = ExampleBuilder(spill_dir)
        waiting: Spill[ReviewedTask] = Spill(spill_dir / "rejected")
        screen = TaskFilter(request.filters)
        counts = _TaskCounts()

        def place(kind: FileKind, example: Example) -> None:
            split = split_of(example.group, request.validation_fraction, request.seed)
            sets[(kind, split)].add(example)

        def settled_pairs() -> Iterator[PreferenceExample]:
            for task in waiting:
                task = screen.settle(task) if screen.waits(task) else task
                counts.add(task)
                pair = builder.rejected_pair(task)
                if pair is not None:
                    yield pair

        try:
            for raw in _in_id_order(tasks):
                task = screen.admit(decide(raw))
                if builder.waits(task):
                    waiting.append(task)
                    continue
                counts.add(task)
                example = builder.add(task)
                if example is not None:
                    place("sft", example)
            for pair in builder.pairs(settled_pairs()):
                place("preference", pair)
            written: dict[str, WrittenFile] = {}
            reports: dict[str, ValidationReport] = {}
            for files in sets.values():
                set_written, set_reports = files.close()
                written.update((file.name, file) for file in set_written)
                reports.update(set_reports)
            manifest = _manifest(
                export_id,
                project,
                request,
                counter,
                counts.as_dict(builder.kept_rejected),
                {f.name: f.lineage.count for f in sets.values()},
                written,
                reports,
            )
            lineage = (row for files in sets.values() for row in files.lineage)
            write_json_with_list(staging / MANIFEST, manifest, "lineage", lineage)
        finally:
            for files in sets.values():
                files.discard()
            builder.close()
            waiting.close()
    return ExportResult(export_id, folder.commit(), manifest)


def run_export(settings: Settings, request: ExportRequest) -> ExportResult:
    """Read the project's tasks in pages and export them."""
    with TaskReader(settings) as reader:
        project_id, title = reader.resolve_project(request.project)
        # A generator: each page's task JSON is reduced to its decision and dropped as the
        # next page is read, instead of holding the whole project's JSON at once.
        tasks = (task for page in reader.pages(project_id) for task in page)
        export_id = request.export_id or new_export_id()
        project = {"id": project_id, "title": title, "label_studio_url": reader.url}
        root = settings.export_dir / f"project-{project_id}"
        return export_tasks(tasks, request, root, export_id, project)
