"""What a registered model version points at, and how an application reaches it.

A version is either a folder this machine can load with transformers (a full model or a LoRA
adapter whose `adapter_config.json` names its base), or a model behind an OpenAI-compatible
API: OpenAI itself (an `ft:` id), vLLM, Ollama, LiteLLM... by base URL. The reference is kept
as one JSON tag on the MLflow model version, so any MLflow client can read it too.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from tracetune.sync.errors import InvalidInputError

ReferenceKind = Literal["local", "openai"]

#: OpenAI's announced end of self-serve fine-tuning: no new jobs from this day...
OPENAI_FINE_TUNING_ENDS = date(2027, 1, 6)
#: ...and the GPT-4o / GPT-4.1 families, their fine-tunes included, shut down on this one.
OPENAI_GPT4O_SHUTDOWN = date(2027, 1, 14)
_SHUTDOWN_FAMILIES = ("gpt-4o", "gpt-4.1")


class ModelReference(BaseModel):
    kind: ReferenceKind
    #: A folder (kind `local`) or a model id the API knows (kind `openai`).
    model: str
    #: For kind `openai`: the API's base URL; None means `OPENAI_BASE_URL` or OpenAI itself.
    base_url: str | None = None
    #: The model name the application sends and LangSmith records (`ls_model_name`), when it
    #: differs from `model` (a local folder served by vLLM under `--served-model-name`).
    served_name: str | None = None
    #: The environment variable holding the endpoint's key (the key itself is never stored);
    #: None means `OPENAI_API_KEY`.
    api_key_env: str | None = None

    @property
    def name_in_traces(self) -> str:
        if self.served_name:
            return self.served_name
        return Path(self.model).name if self.kind == "local" else self.model

    def describe(self) -> str:
        if self.kind == "local":
            return f"local folder {self.model}"
        where = self.base_url or "OPENAI_BASE_URL / api.openai.com"
        return f"{self.model} at {where}"

    def to_tag(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_tag(cls, raw: str) -> ModelReference:
        return cls.model_validate(json.loads(raw))


def local_reference(path: Path, served_name: str | None = None) -> ModelReference:
    """A local folder, checked now: a registry entry nobody can load is refused."""
    folder = path.expanduser().resolve()
    if not (folder / "config.json").exists() and not (folder / "adapter_config.json").exists():
        raise InvalidInputError(
            f"{path} is not a model folder: it holds neither config.json nor adapter_config.json"
        )
    return ModelReference(kind="local", model=str(folder), served_name=served_name)


def retirement_note(reference: ModelReference, today: date | None = None) -> str | None:
    """A warning for models on OpenAI that OpenAI shuts down (GPT-4o / 4.1 and their ft:)."""
    if reference.kind != "openai" or reference.base_url not in (None, "https://api.openai.com/v1"):
        return None
    base = reference.model.removeprefix("ft:")
    if not base.startswith(_SHUTDOWN_FAMILIES):
        return None
    day = today or date.today()
    verb = "shut down" if day >= OPENAI_GPT4O_SHUTDOWN else "shuts down"
    return (
        f"OpenAI {verb} the GPT-4o / GPT-4.1 families and their fine-tunes on "
        f"{OPENAI_GPT4O_SHUTDOWN.isoformat()}: evaluate and promote a replacement before then"
    )
