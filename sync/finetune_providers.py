"""The fine-tune provider seam: `start`, `refresh` and `cancel` a job described by a record.

Providers: `openai` (any OpenAI-compatible API: upload, create, poll, cancel) and `local` (TRL
with LoRA on a local model folder). Each picks its files from an export folder by method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.job_records import FineTuneRecord, JobRecords
from tracetune.sync.settings import Settings

PROVIDERS = ("openai", "local")


class FineTuneProvider(Protocol):
    name: str

    def start(self, record: FineTuneRecord) -> FineTuneRecord:
        """Begin the job; saves progress on the record so a retried start resumes."""
        ...

    def refresh(self, record: FineTuneRecord) -> FineTuneRecord:
        """Fetch the job's current status and events."""
        ...

    def cancel(self, record: FineTuneRecord) -> FineTuneRecord: ...


def export_files(export_path: Path, provider: str, method: str) -> dict[str, str]:
    """The training (and, when present, validation) file of an export for a provider/method."""
    family = "openai" if provider == "openai" else "trl"
    kind = "sft" if method == "sft" else "preference"
    files = {}
    for split in ("train", "validation"):
        path = export_path / f"{family}_{kind}.{split}.jsonl"
        if path.exists():
            files[split] = str(path)
    if "train" not in files:
        raise InvalidInputError(
            f"export {export_path.name} has no {family}_{kind}.train.jsonl: it holds no "
            f"{'SFT examples' if kind == 'sft' else 'preference pairs'} in the {family} format"
        )
    return files


def provider_for(name: str, settings: Settings, records: JobRecords) -> FineTuneProvider:
    """The provider named `name`; the local one imports TRL only when asked for."""
    if name == "openai":
        from tracetune.sync.providers_openai import OpenAIProvider

        return OpenAIProvider(settings, records)
    if name == "local":
        from tracetune.sync.providers_local import LocalProvider

        return LocalProvider(settings, records)
    raise InvalidInputError(f"unknown provider {name!r}: choose one of {', '.join(PROVIDERS)}")
