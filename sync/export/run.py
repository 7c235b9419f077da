"""Export: reviewed Label Studio tasks → fine-tune files, a manifest and validation reports.

One function, `run_export`, runs the whole pipeline; the RQ job and `tracetune export --now`
both call it. Reading is the only I/O before the writes, and the writes go through a staging
folder (see `export_writer`), so a run is all-or-nothing.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracetune.sync.export.decisions import RULE_DESCRIPTION, ReviewedTask, decide
from tracetune.sync.export.examples import (
    Lineage,
    PreferenceExample,
    SftExample,
    build_examples,
)
from tracetune.sync.export.filters import ExportFilters, apply_filters
from tracetune.sync.export.to_openai import preference_line, sft_line
from tracetune.sync.export.to_trl import preference_row, sft_row
from tracetune.sync.export.validation import (
    ValidationReport,
    token_limit_for,
    validate_records,
)
from tracetune.sync.export.writer import (
    ExportFolder,
    Family,
    FileKind,
    Split,
    WrittenFile,
    jsonl_bytes,
    split_of,
    training_file_name,
    write_json,
    write_jsonl,
    write_parquet,
)
from tracetune.sync.label_studio.task_reader import TaskReader
from tracetune.sync.settings import Settings
from tracetune.sync.token_count import encoding_name_for, token_counter

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
    export_id: str
    path: Path
    manifest: dict[str, Any]

    @property
    def valid(self) -> bool:
        return all(report["ok"] for report in self.manifest["validation"].values())


def _split(examples: Sequence[Any], fraction: float, seed: str) -> dict[Split, list[Any]]:
    parts: dict[Split, list[Any]] = {"train": [], "validation": []}
    for example in examples:
        parts[split_of(example.group, fraction, seed)].append(example)
    return parts


_Converter = Callable[[Any], dict[str, Any]]
_FAMILIES: dict[tuple[str, FileKind], _Converter] = {
    ("openai", "sft"): sft_line,
    ("openai", "preference"): preference_line,
    ("trl", "sft"): sft_row,
    ("trl", "preference"): preference_row,
}


def _lineage_rows(name: str, examples: Sequence[SftExample | PreferenceExample]) -> list[dict]:
    rows = []
    for line, example in enumerate(examples, start=1):
        lineage: Lineage = example.lineage
        rows.append({"set": name, "line": line, "group": example.group, **lineage.as_dict()})
    return rows


def _write_sets(
    folder: Path,
    request: ExportRequest,
    sets: Mapping[tuple[FileKind, Split], Sequence[SftExample | PreferenceExample]],
) -> tuple[dict[str, WrittenFile], dict[str, ValidationReport]]:
    counter = token_counter(encoding_name_for(request.model))
    limit = token_limit_for(request.model)
    written: dict[str, WrittenFile] = {}
    reports: dict[str, ValidationReport] = {}
    for (kind, split), examples in sets.items():
        if not examples:
            continue
        for family in request.formats:
            rows = [_FAMILIES[(family, kind)](example) for example in examples]
            file = write_jsonl(folder / training_file_name(family, kind, split), rows)
            written[file.name] = file
            if family == "openai":
                lines = jsonl_bytes(rows).decode("utf-8").splitlines()
                # The validation split is checked for shape and tokens, not for a minimum size.
                minimum = 10 if split == "train" else 1
                reports[file.name] = validate_records(
                    file.name, lines, kind, counter, max_tokens=limit, min_examples=minimum
                )
            else:
                parquet_name = training_file_name(family, kind, split, suffix="parquet")
                parquet = write_parquet(folder / parquet_name, rows)
                written[parquet.name] = parquet
    return written, reports


def _counts(tasks: Sequence[ReviewedTask], kept_rejected: int) -> dict[str, Any]:
    return {
        "tasks": len(tasks),
        "by_decision": dict(sorted(Counter(t.decision.value for t in tasks).items())),
        "excluded_by_reason": dict(
            sorted(Counter(t.reason for t in tasks if t.reason is not None).items())
        ),
        "by_rule": dict(sorted(Counter(t.rule.value for t in tasks).items())),
        "rejected_kept_as_rejected_side": kept_rejected,
    }


def export_tasks(
    tasks: Iterable[dict[str, Any]],
    request: ExportRequest,
    out_root: Path,
    export_id: str,
    project: Mapping[str, Any],
) -> ExportResult:
    """The pure part of an export over already-read task JSON: decide, filter, write."""
    reviewed = apply_filters([decide(task) for task in tasks], request.filters)
    sft, pairs, kept_rejected = build_examples(reviewed)
    sft_parts = _split(sft, request.validation_fraction, request.seed)
    pair_parts = _split(pairs, request.validation_fraction, request.seed)
    sets: dict[tuple[FileKind, Split], Sequence[SftExample | PreferenceExample]] = {
        ("sft", "train"): sft_parts["train"],
        ("sft", "validation"): sft_parts["validation"],
        ("preference", "train"): pair_parts["train"],
        ("preference", "validation"): pair_parts["validation"],
    }
    folder = ExportFolder(out_root, export_id)
    staging = folder.open()
    written, reports = _write_sets(staging, request, sets)
    lineage: list[dict[str, Any]] = []
    for (kind, split), examples in sets.items():
        lineage.extend(_lineage_rows(f"{kind}.{split}", examples))
    counter = token_counter(encoding_name_for(request.model))
    manifest = {
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
        "counts": _counts(reviewed, kept_rejected),
        "examples": {f"{kind}.{split}": len(examples) for (kind, split), examples in sets.items()},
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
        "lineage": lineage,
    }
    write_json(staging / MANIFEST, manifest)
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
