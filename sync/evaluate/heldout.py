"""The held-out prompts of an evaluation: an export's validation split, proved unseen.

The validation file is read only after its SHA-256 matches the one its manifest records, so
the prompts are exactly the split the export wrote. The manifests of the models' own training
exports then prove that no held-out example was trained on: an example whose group (the
near-duplicate cluster or the exact prompt, as the export's split uses) or LangSmith run is in
a model's training split is left out, and the report counts it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.export.run import MANIFEST
from tracetune.sync.export.writer import training_file_name

HELD_OUT_SET = "sft.validation"
TRAINING_SETS = ("sft.train", "preference.train")
HELD_OUT_FILE = training_file_name("trl", "sft", "validation")


@dataclass(frozen=True)
class HeldOutExample:
    #: `<export id>:<line>`: stable across reruns of the same evaluation.
    id: str
    prompt: list[dict[str, Any]]
    #: The reviewer-approved answer (accepted as is, or the reviewer's correction).
    reference: str
    group: str
    run_ids: tuple[str, ...]


@dataclass
class HeldOutSet:
    export_id: str
    export_path: Path
    manifest_sha256: str
    file_sha256: str
    examples: list[HeldOutExample]
    excluded: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class TrainingSet:
    """What one model was trained on, read from its export's manifest."""

    label: str
    groups: frozenset[str]
    run_ids: frozenset[str]


def _manifest(export_path: Path) -> tuple[dict[str, Any], str]:
    path = export_path / MANIFEST
    if not path.exists():
        raise InvalidInputError(f"{export_path} holds no {MANIFEST}: not a tracetune export")
    raw = path.read_bytes()
    return json.loads(raw), hashlib.sha256(raw).hexdigest()


def load_heldout(export_id: str, export_path: Path) -> HeldOutSet:
    manifest, manifest_hash = _manifest(export_path)
    path = export_path / HELD_OUT_FILE
    count = int(manifest.get("examples", {}).get(HELD_OUT_SET, 0))
    if count == 0 or not path.exists():
        raise InvalidInputError(
            f"export {export_id} has no held-out split ({HELD_OUT_SET} is empty): export again "
            "with --validation above 0 once more tasks are reviewed"
        )
    recorded = manifest.get("files", {}).get(HELD_OUT_FILE, {}).get("sha256")
    payload = path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if recorded != digest:
        raise InvalidInputError(
            f"{path} does not match its manifest (sha256 {digest[:12]}, manifest "
            f"{str(recorded)[:12]}): the held-out split was changed after the export"
        )
    lineage = {
        int(row["line"]): row for row in manifest.get("lineage", []) if row["set"] == HELD_OUT_SET
    }
    examples = []
    for line, text in enumerate(payload.decode("utf-8").splitlines(), start=1):
        messages = json.loads(text)["messages"]
        if not messages or messages[-1].get("role") != "assistant":
            continue
        origin = lineage.get(line, {})
        examples.append(
            HeldOutExample(
                id=f"{export_id}:{line}",
                prompt=messages[:-1],
                reference=str(messages[-1].get("content") or ""),
                group=str(origin.get("group", "")),
                run_ids=tuple(origin.get("run_ids", ())),
            )
        )
    return HeldOutSet(export_id, export_path, manifest_hash, digest, examples)


def training_set(label: str, export_path: Path) -> TrainingSet:
    manifest, _ = _manifest(export_path)
    rows = [row for row in manifest.get("lineage", []) if row["set"] in TRAINING_SETS]
    return TrainingSet(
        label=label,
        groups=frozenset(str(row.get("group", "")) for row in rows) - {""},
        run_ids=frozenset(str(r) for row in rows for r in row.get("run_ids", ())),
    )


def without_trained(heldout: HeldOutSet, trained: Mapping[str, TrainingSet]) -> HeldOutSet:
    """Drop held-out examples any of the models was trained on; count why per model."""
    kept = []
    excluded: Counter[str] = Counter(heldout.excluded)
    for example in heldout.examples:
        seen_by = [
            label
            for label, training in trained.items()
            if example.group in training.groups or set(example.run_ids) & training.run_ids
        ]
        if seen_by:
            excluded.update(f"in the training split of {label}" for label in seen_by)
        else:
            kept.append(example)
    if not kept:
        raise InvalidInputError(
            f"every held-out example of export {heldout.export_id} was in a model's training "
            f"split ({dict(excluded)}): evaluate on a newer export (--export)"
        )
    return HeldOutSet(
        heldout.export_id,
        heldout.export_path,
        heldout.manifest_sha256,
        heldout.file_sha256,
        kept,
        excluded,
    )
