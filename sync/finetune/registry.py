"""The fine-tune provider seam: the registry is the only place that knows every provider.

A provider declares its name, the export file family it trains on, whether a started job runs
elsewhere and must be polled, and where its class lives (imported only when used, so
`tracetune --help` never loads TRL or the OpenAI SDK). The CLI's `--provider` choices, the job
record and the worker's polling all read this registry; a new provider is one module plus one
`register_provider` line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.export.writer import Family, FileKind, training_file_name
from tracetune.sync.finetune.records import FineTuneRecord, FineTuneRecords
from tracetune.sync.settings import Settings


class FineTuneProvider(Protocol):
    def start(self, record: FineTuneRecord) -> FineTuneRecord:
        """Begin the job; saves progress on the record so a retried start resumes."""
        ...

    def refresh(self, record: FineTuneRecord) -> FineTuneRecord:
        """Fetch the job's current status and events."""
        ...

    def cancel(self, record: FineTuneRecord) -> FineTuneRecord: ...


class ProviderFactory(Protocol):
    def __call__(self, settings: Settings, records: FineTuneRecords) -> FineTuneProvider: ...


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    #: Export files it trains on (`openai_sft.train.jsonl` or `trl_sft.train.jsonl`...).
    family: Family
    #: True when the job runs at the provider: the worker polls it until it is done. False when
    #: the start job itself trains to the end (local training).
    polls: bool
    #: True when the base model is a folder on this machine, which the CLI resolves for the
    #: worker; False when it is a name the provider knows.
    local_model: bool
    #: `module:Class` of the implementation, imported on first use.
    implementation: str
    description: str

    def load(self) -> ProviderFactory:
        module, _, attribute = self.implementation.partition(":")
        factory: ProviderFactory = getattr(importlib.import_module(module), attribute)
        return factory


PROVIDERS: dict[str, ProviderSpec] = {}


def register_provider(spec: ProviderSpec) -> None:
    PROVIDERS[spec.name] = spec


register_provider(
    ProviderSpec(
        name="openai",
        family="openai",
        polls=True,
        local_model=False,
        implementation="tracetune.sync.finetune.openai_api:OpenAIProvider",
        description="any OpenAI-compatible fine-tuning API (OPENAI_BASE_URL)",
    )
)
register_provider(
    ProviderSpec(
        name="local",
        family="trl",
        polls=False,
        local_model=True,
        implementation="tracetune.sync.finetune.local_trl:LocalProvider",
        description="TRL + LoRA on a local model folder, in the worker (GPU when present)",
    )
)


def provider_spec(name: str) -> ProviderSpec:
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise InvalidInputError(f"unknown provider {name!r}: choose one of {known}") from None


def provider_for(name: str, settings: Settings, records: FineTuneRecords) -> FineTuneProvider:
    return provider_spec(name).load()(settings, records)


def export_files(export_path: Path, provider: str, method: str) -> dict[str, str]:
    """The training (and, when present, validation) file of an export for a provider/method."""
    family = provider_spec(provider).family
    kind: FileKind = "sft" if method == "sft" else "preference"
    files = {}
    for split in ("train", "validation"):
        path = export_path / training_file_name(family, kind, split)
        if path.exists():
            files[split] = str(path)
    if "train" not in files:
        raise InvalidInputError(
            f"export {export_path.name} has no {training_file_name(family, kind, 'train')}: it "
            f"holds no {'SFT examples' if kind == 'sft' else 'preference pairs'} in the "
            f"{family} format"
        )
    return files
