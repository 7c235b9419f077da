"""Where a fine-tuned model came from: its export (with the manifest's hash), base, parameters.

The manifest hash ties a model version to the exact files it was trained on; the held-out
check of `tracetune eval` reads the same manifest to prove that no evaluation prompt was in the
training split.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tracetune.sync.export.records import ExportRecord
from tracetune.sync.export.run import MANIFEST
from tracetune.sync.finetune.records import FineTuneRecord


def manifest_sha256(export_path: Path) -> str:
    return hashlib.sha256((export_path / MANIFEST).read_bytes()).hexdigest()


def _training_metrics(record: FineTuneRecord) -> dict[str, Any]:
    """The numbers worth keeping on the registry entry (the full loss curve stays on the job)."""
    metrics = {k: v for k, v in record.metrics.items() if k != "loss"}
    losses = record.metrics.get("loss") or []
    if losses:
        metrics.update(
            first_loss=losses[0]["loss"], final_loss=losses[-1]["loss"], steps=losses[-1]["step"]
        )
    return metrics


def fine_tune_lineage(record: FineTuneRecord, export: ExportRecord) -> dict[str, Any]:
    export_path = Path(export.path)
    manifest = json.loads((export_path / MANIFEST).read_text())
    return {
        "export_id": export.export_id,
        "export_path": str(export_path),
        "manifest_sha256": manifest_sha256(export_path),
        "project": manifest.get("project", {}).get("title"),
        "examples": manifest.get("examples", {}),
        "base_model": record.model,
        "provider": record.provider,
        "method": record.method,
        "finetune_job": record.id,
        "provider_job_id": record.provider_job_id,
        "hyperparameters": record.hyperparameters,
        "training": _training_metrics(record),
        "files": {split: Path(path).name for split, path in record.files.items()},
    }
