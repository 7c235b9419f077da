"""The `openai` provider: upload files, create the fine-tuning job, poll it, cancel it.

Works against any OpenAI-compatible base URL (`OPENAI_BASE_URL`). OpenAI ends self-serve
fine-tuning (no new jobs from 2027-01-06): a platform that refuses to create the job is answered
with one line that says so and points at the local provider. Files are validated against
OpenAI's data rules before the first byte is uploaded; an invalid file fails the job with the
validation summary and nothing is sent. Each step is saved on the record, so a start retried
after a crash reuses the uploads and the created job instead of duplicating them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import openai

from tracetune.sync.errors import (
    ConfigurationError,
    InvalidInputError,
    RefusedError,
)
from tracetune.sync.export.validation import token_limit_for, validate_file
from tracetune.sync.export.writer import FileKind
from tracetune.sync.finetune.records import FineTuneRecord, FineTuneRecords
from tracetune.sync.openai_errors import openai_errors as shared_openai_errors
from tracetune.sync.settings import Settings
from tracetune.sync.token_count import encoding_name_for, token_counter

T = TypeVar("T")

#: Hyperparameters OpenAI accepts per method; anything else is refused before upload.
HYPERPARAMETERS = {
    "sft": {"n_epochs", "batch_size", "learning_rate_multiplier"},
    "dpo": {"n_epochs", "batch_size", "learning_rate_multiplier", "beta"},
}


@contextmanager
def openai_errors(url: str) -> Iterator[None]:
    """OpenAI SDK failures → our errors; connection trouble and 5xx/429 are transient."""
    with shared_openai_errors(f"the OpenAI API at {url}", f"OpenAI API at {url}: not found"):
        yield


#: HTTP statuses with which a platform refuses to create a fine-tuning job it does not offer
#: (the files were just uploaded with the same key, so a 403 here is no bad key).
REFUSAL_STATUSES = frozenset({403, 404, 410})
#: A 400 is a refusal only when it says the service is not offered any more.
_NOT_OFFERED = re.compile(
    r"no longer|not (?:be )?(?:available|supported|allowed|offered)|discontinued|deprecated|"
    r"ended|retired|sunset",
    re.IGNORECASE,
)


def refusal_line(url: str, exc: openai.APIStatusError) -> str:
    """One line for a refused job creation; the platform's own words are kept."""
    message = _platform_message(exc)
    return (
        f"the OpenAI API at {url} refused to create the fine-tuning job (HTTP "
        f"{exc.status_code}: {message}); OpenAI stopped new self-serve fine-tuning jobs on "
        "2027-01-06: train with --provider local, or set OPENAI_BASE_URL to a service that "
        "still accepts jobs"
    )


class OpenAIProvider:
    def __init__(self, settings: Settings, records: FineTuneRecords) -> None:
        key = settings.secret("openai_api_key")
        if not key:
            raise ConfigurationError("OPENAI_API_KEY is not set")
        self.records = records
        self.client = openai.OpenAI(
            api_key=key,
            base_url=settings.openai_base_url,
            timeout=settings.http_timeout_s,
            max_retries=settings.http_retries,
        )
        self.url = str(self.client.base_url)

    def _call(self, fn: Callable[[], T]) -> T:
        with openai_errors(self.url):
            return fn()

    def validate(self, record: FineTuneRecord) -> None:
        """Refuse files that break OpenAI's rules, naming the first problems."""
        unknown = set(record.hyperparameters) - HYPERPARAMETERS[record.method]
        if unknown:
            raise InvalidInputError(
                f"hyperparameters {sorted(unknown)} are not accepted for {record.method}"
            )
        counter = token_counter(encoding_name_for(record.model))
        kind: FileKind = "sft" if record.method == "sft" else "preference"
        for split, path in sorted(record.files.items()):
            report = validate_file(
                Path(path),
                kind,
                counter,
                max_tokens=token_limit_for(record.model),
                min_examples=10 if split == "train" else 1,
            )
            if not report.ok:
                raise InvalidInputError(f"validation failed, nothing uploaded: {report.summary()}")

    def _upload(self, record: FineTuneRecord, split: str) -> str:
        if split in record.provider_files:
            return record.provider_files[split]
        path = Path(record.files[split])
        with path.open("rb") as handle:
            uploaded = self._call(
                lambda: self.client.files.create(file=(path.name, handle), purpose="fine-tune")
            )
        record.provider_files[split] = uploaded.id
        self.records.save(record)
        return uploaded.id

    def start(self, record: FineTuneRecord) -> FineTuneRecord:
        if record.provider_job_id:
            return self.refresh(record)
        self.validate(record)
        training = self._upload(record, "train")
        validation = self._upload(record, "validation") if "validation" in record.files else None
        method_type = "supervised" if record.method == "sft" else "dpo"
        method: Any = {
            "type": method_type,
            method_type: {"hyperparameters": dict(record.hyperparameters)},
        }
        options: dict[str, Any] = {"model": record.model, "training_file": training}
        if validation:
            options["validation_file"] = validation
        if record.suffix:
            options["suffix"] = record.suffix
        try:
            job = self.client.fine_tuning.jobs.create(
                method=method, metadata={"tracetune_job": record.id}, **options
            )
        except openai.APIStatusError as exc:
            if _is_refusal(exc):
                raise RefusedError(refusal_line(self.url, exc)) from exc
            with openai_errors(self.url):
                raise
        except openai.APIError:
            with openai_errors(self.url):
                raise
        record.provider_job_id = job.id
        record.status = job.status
        record.events.append(f"created {job.id} on {self.url}")
        return self.records.save(record)

    def refresh(self, record: FineTuneRecord) -> FineTuneRecord:
        if not record.provider_job_id:
            return record
        job_id = record.provider_job_id
        job = self._call(lambda: self.client.fine_tuning.jobs.retrieve(job_id))
        events = self._call(
            lambda: list(self.client.fine_tuning.jobs.list_events(job_id, limit=20))
        )
        record.status = job.status
        record.fine_tuned_model = job.fine_tuned_model
        if job.error is not None and job.error.message:
            record.error = job.error.message
        if job.trained_tokens:
            record.metrics["trained_tokens"] = job.trained_tokens
        record.events = [event.message for event in sorted(events, key=lambda e: e.created_at)]
        return self.records.save(record)

    def cancel(self, record: FineTuneRecord) -> FineTuneRecord:
        if not record.provider_job_id:
            record.status = "cancelled"
            return self.records.save(record)
        job_id = record.provider_job_id
        job = self._call(lambda: self.client.fine_tuning.jobs.cancel(job_id))
        record.status = job.status
        return self.records.save(record)


def _platform_message(exc: openai.APIStatusError) -> str:
    """The `error.message` the platform sent, else the SDK's summary of the response."""
    body: Any = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"]).splitlines()[0]
    return exc.message.splitlines()[0] if exc.message else type(exc).__name__


def _is_refusal(exc: openai.APIStatusError) -> bool:
    if exc.status_code in REFUSAL_STATUSES:
        return True
    return exc.status_code == 400 and bool(_NOT_OFFERED.search(_platform_message(exc)))
