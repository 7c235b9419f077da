"""Answers of one model to the held-out prompts: transformers locally, or any OpenAI-compatible API.

Local folders load with transformers (a LoRA adapter through peft, on top of the base its
`adapter_config.json` names), on the GPU when torch sees one (bf16 where supported) and on the
CPU otherwise, and answer in batches with greedy decoding, so the same model gives the same
answers on a rerun. Endpoints (OpenAI, vLLM, Ollama, LiteLLM...) are asked through the `openai`
SDK with temperature 0, a batch of requests at a time.

Answers are appended to a JSONL file per model, one fsynced batch at a time: an evaluation
killed half way resumes where it stopped and never asks a model twice for the same prompt.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from tracetune.sync.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
)
from tracetune.sync.evaluate.heldout import HeldOutExample
from tracetune.sync.models.references import ModelReference
from tracetune.sync.openai_errors import openai_errors
from tracetune.sync.settings import Settings

Prompt = list[dict[str, Any]]


class Progress(Protocol):
    def stage(self, name: str, total: int | None) -> None: ...

    def advance(self, count: int) -> None: ...


class AnswerGenerator(Protocol):
    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        """One answer per prompt, in order."""
        ...


class TransformersGenerator:
    """A local folder: a full causal LM, or a LoRA adapter over its base model."""

    def __init__(self, folder: str, max_new_tokens: int, max_prompt_tokens: int = 2048) -> None:
        self.folder = Path(folder)
        self.max_new_tokens = max_new_tokens
        self.max_prompt_tokens = max_prompt_tokens
        self._model: Any = None
        self._tokenizer: Any = None
        self.device = "cpu"

    def _load(self) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        if not self.folder.is_dir():
            raise NotFoundError(f"model folder {self.folder} does not exist")
        cuda = torch.cuda.is_available()
        dtype = (
            (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
            if cuda
            else torch.float32
        )
        self.device = "cuda" if cuda else "cpu"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # peft/transformers renames
                if (self.folder / "adapter_config.json").exists():
                    from peft import AutoPeftModelForCausalLM

                    model = AutoPeftModelForCausalLM.from_pretrained(str(self.folder), dtype=dtype)
                else:
                    model = AutoModelForCausalLM.from_pretrained(str(self.folder), dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidInputError(f"cannot load the model in {self.folder}: {first}") from exc
        tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        tokenizer.truncation_side = "left"  # keep the end of a long prompt: the question
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._model = model.to(self.device).eval()
        self._tokenizer = tokenizer

    def _render(self, prompt: Prompt) -> str:
        if self._tokenizer.chat_template:
            text: str = self._tokenizer.apply_chat_template(
                prompt, tokenize=False, add_generation_prompt=True
            )
            return text
        turns = "".join(f"{m['role']}: {m.get('content') or ''}\n" for m in prompt)
        return f"{turns}assistant: "

    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        import torch

        if self._model is None:
            self._load()
        texts = [self._render(p) for p in prompts]
        encoded = self._tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_prompt_tokens,
            add_special_tokens=False,
        ).to(self.device)
        with torch.inference_mode():
            output = self._model.generate(
                **encoded,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self._tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        answers = self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [answer.strip() for answer in answers]


class EndpointGenerator:
    """A model behind an OpenAI-compatible chat-completions API."""

    def __init__(
        self, reference: ModelReference, settings: Settings, max_new_tokens: int, concurrency: int
    ) -> None:
        import openai

        key_name = reference.api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(key_name) or (
            settings.secret("openai_api_key") if key_name == "OPENAI_API_KEY" else None
        )
        base_url = reference.base_url or settings.openai_base_url
        if not key and base_url is None:
            raise ConfigurationError(f"{key_name} is not set (needed to ask {reference.model})")
        # Self-hosted servers (vLLM, Ollama) often need no key; the SDK insists on one.
        self.client = openai.OpenAI(
            api_key=key or "unused",
            base_url=base_url,
            timeout=settings.http_timeout_s,
            max_retries=settings.http_retries,
        )
        self.url = str(self.client.base_url)
        self.model = reference.model
        self.max_new_tokens = max_new_tokens
        self.concurrency = concurrency

    def ask(self, prompt: Prompt) -> str:
        with openai_errors(
            f"the model endpoint at {self.url}",
            f"the model endpoint at {self.url} has no model {self.model!r}",
        ):
            response = self.client.chat.completions.create(
                model=self.model,
                messages=prompt,  # type: ignore[arg-type]
                max_tokens=self.max_new_tokens,
                temperature=0,
            )
        return (response.choices[0].message.content or "").strip()

    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self.ask, prompts))


def generator_for(
    reference: ModelReference, settings: Settings, max_new_tokens: int, concurrency: int = 4
) -> AnswerGenerator:
    if reference.kind == "local":
        return TransformersGenerator(reference.model, max_new_tokens)
    return EndpointGenerator(reference, settings, max_new_tokens, concurrency)


class AnswerFile:
    """`answers.<role>.jsonl`: what one model answered, appended batch by batch."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        answers = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: that prompt is asked again
            answers[str(row["id"])] = str(row["answer"])
        return answers

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def answer_all(
    generator: AnswerGenerator,
    examples: Sequence[HeldOutExample],
    answers: AnswerFile,
    batch_size: int,
    progress: Progress,
    label: str,
) -> dict[str, str]:
    """Every example's answer, asking the model only for those not answered yet."""
    done = answers.load()
    pending = [e for e in examples if e.id not in done]
    progress.stage(f"{label}: answers", len(examples))
    progress.advance(len(examples) - len(pending))
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        began = time.perf_counter()
        texts = generator.generate([e.prompt for e in batch])
        per_answer = (time.perf_counter() - began) / len(batch)
        rows = [
            {"id": e.id, "answer": text, "seconds": round(per_answer, 4)}
            for e, text in zip(batch, texts, strict=True)
        ]
        answers.append(rows)
        done.update((str(row["id"]), str(row["answer"])) for row in rows)
        progress.advance(len(batch))
    return {e.id: done[e.id] for e in examples}
