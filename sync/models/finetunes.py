"""Every successful fine-tune becomes a registry version, once, with its lineage.

Called by the worker when a job succeeds (a local training run, or a provider poll that sees
success) and by `tracetune finetune status`; registering the same job twice returns the version
it already has, so a retried job or a second look never duplicates it.
"""

from __future__ import annotations

from pathlib import Path

from tracetune.sync.export.records import ExportRecords
from tracetune.sync.finetune.records import FineTuneRecord, FineTuneRecords
from tracetune.sync.finetune.registry import provider_spec
from tracetune.sync.models.lineage import fine_tune_lineage
from tracetune.sync.models.references import ModelReference, local_reference
from tracetune.sync.models.registry import ModelRegistry, ModelVersionInfo
from tracetune.sync.settings import Settings


def reference_of(record: FineTuneRecord, settings: Settings) -> ModelReference:
    model = record.fine_tuned_model or ""
    if provider_spec(record.provider).local_model:
        return local_reference(Path(model))
    return ModelReference(kind="openai", model=model, base_url=settings.openai_base_url)


def register_fine_tune(
    settings: Settings, records: FineTuneRecords, record: FineTuneRecord
) -> ModelVersionInfo | None:
    """Register a succeeded job's model (None for a job that did not succeed)."""
    if record.status != "succeeded" or not record.fine_tuned_model or record.export_id is None:
        return None
    export = ExportRecords(records.client).get(record.export_id)
    lineage = fine_tune_lineage(record, export)
    description = (
        f"{record.provider}/{record.method} fine-tune {record.id} of {record.model} on export "
        f"{record.export_id} (manifest sha256 {lineage['manifest_sha256'][:12]})"
    )
    version = ModelRegistry(settings).register(
        reference_of(record, settings), lineage, description, job_id=record.id
    )
    if record.model_version != version.version:
        records.update(record.id, model_version=version.version)
    return version
