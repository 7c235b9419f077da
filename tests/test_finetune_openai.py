"""The `openai` provider through the real `openai` SDK against the files + fine-tuning stand-in."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from finetune_exports import recorded_export
from plugins.openai_standin import OpenAIStandin
from plugins.rq_worker import wait_for_job
from rq.job import JobStatus
from worker_env import tracetune, worker_env

from tracetune.sync.finetune.records import FineTuneRecord, FineTuneRecords

pytestmark = pytest.mark.integration


def _env(tmp_path: Path, redis_url: str, api: OpenAIStandin) -> dict[str, str]:
    return worker_env(
        tmp_path,
        redis_url,
        openai_base_url=api.base_url,
        openai_api_key=api.api_key,
        http_retries="0",  # the SDK's own retries off: RQ's retry is under test
    )


def _wait_for_record(redis_url: str, record_id: str, timeout_s: float = 60) -> FineTuneRecord:
    records = FineTuneRecords(redis.Redis.from_url(redis_url))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = records.get(record_id)
        if record.done:
            return record
        time.sleep(0.2)
    raise AssertionError(f"{record_id} still {records.get(record_id).status}")


def test_a_job_is_uploaded_created_polled_to_success_and_retried_on_a_5xx(
    tmp_path: Path, redis_url: str, openai_api: OpenAIStandin, rq_worker
) -> None:
    export = recorded_export(tmp_path, redis_url, reviewed=30, export_id="x-ft-openai")
    env = _env(tmp_path, redis_url, openai_api)
    openai_api.state.fail_next = 1  # the first upload meets a 503

    started = tracetune(
        "finetune", "start", "--provider", "openai", "--model", "gpt-4o-mini-2024-07-18",
        "--suffix", "docs-qa", "--epochs", "2", "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    record_id = json.loads(started.stdout)["id"]
    rq_worker(env)
    record = _wait_for_record(redis_url, record_id)

    assert record.status == "succeeded", record
    job = openai_api.state.jobs[record.provider_job_id or ""]
    assert record.fine_tuned_model == job["fine_tuned_model"]
    assert record.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:org-standin:docs-qa:")
    assert job["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 2}},
    }
    assert job["metadata"] == {"tracetune_job": record_id}
    # One upload per file despite the retry, byte for byte what the export wrote.
    files = openai_api.state.files
    assert sorted(f["filename"] for f in files.values()) == [
        "openai_sft.train.jsonl",
        "openai_sft.validation.jsonl",
    ]
    assert (
        openai_api.state.contents[job["training_file"]]
        == (export / "openai_sft.train.jsonl").read_bytes()
    )
    assert (
        openai_api.state.contents[job["validation_file"]]
        == (export / "openai_sft.validation.jsonl").read_bytes()
    )
    assert record.events[-1] == "The job has successfully completed"
    start_job = wait_for_job(redis_url, record.rq_job_id or "")
    assert start_job.meta["attempts"] == 1
    assert start_job.meta["reason"].startswith("ServiceUnavailableError: the OpenAI API")

    status = tracetune("finetune", "status", record_id, env=env, cwd=tmp_path).stdout
    assert f"{record_id}  openai/sft  succeeded  model gpt-4o-mini-2024-07-18" in status
    assert f"fine-tuned model: {record.fine_tuned_model}" in status
    listed = tracetune("finetune", "list", env=env, cwd=tmp_path).stdout
    assert listed.split() == [record_id, "openai/sft", "succeeded", record.fine_tuned_model]


def test_a_dpo_job_uses_the_preference_files_and_can_be_cancelled(
    tmp_path: Path, redis_url: str, openai_api: OpenAIStandin
) -> None:
    recorded_export(tmp_path, redis_url, reviewed=60, export_id="x-ft-dpo")
    env = _env(tmp_path, redis_url, openai_api)

    started = tracetune(
        "finetune", "start", "--provider", "openai", "--method", "dpo", "--param", "beta=0.2",
        "--now", "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    record = FineTuneRecord.model_validate_json(started.stdout)
    assert record.status == "validating_files"
    job = openai_api.state.jobs[record.provider_job_id or ""]
    assert job["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    uploaded = openai_api.state.contents[job["training_file"]].decode().splitlines()
    assert set(json.loads(uploaded[0])) == {"input", "preferred_output", "non_preferred_output"}

    cancelled = tracetune("finetune", "cancel", record.id, env=env, cwd=tmp_path).stdout
    assert cancelled.startswith(f"{record.id}  openai/dpo  cancelled")
    assert openai_api.state.jobs[job["id"]]["status"] == "cancelled"
    again = tracetune("finetune", "cancel", record.id, env=env, cwd=tmp_path, check=False)
    assert again.returncode == 6
    assert again.stderr.strip() == f"error: {record.id} already cancelled"


def test_a_file_failing_validation_is_never_uploaded(
    tmp_path: Path, redis_url: str, openai_api: OpenAIStandin, rq_worker
) -> None:
    recorded_export(tmp_path, redis_url, reviewed=8, export_id="x-ft-small")
    env = _env(tmp_path, redis_url, openai_api)

    started = tracetune(
        "finetune", "start", "--provider", "openai", "--json", env=env, cwd=tmp_path
    )
    record_id = json.loads(started.stdout)["id"]
    rq_worker(env)
    record = _wait_for_record(redis_url, record_id)

    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith(
        "InvalidInputError: validation failed, nothing uploaded: openai_sft.train.jsonl: "
    )
    assert "too_few_examples" in record.error
    assert openai_api.state.requests == []
    job = wait_for_job(redis_url, record.rq_job_id or "", (JobStatus.FAILED,))
    assert job.meta["attempts"] == 1
    listed = tracetune("jobs", env=env, cwd=tmp_path).stdout
    assert "validation failed, nothing uploaded" in listed


def test_a_wrong_key_is_a_one_line_error(
    tmp_path: Path, redis_url: str, openai_api: OpenAIStandin
) -> None:
    recorded_export(tmp_path, redis_url, reviewed=30, export_id="x-ft-key")
    env = {**_env(tmp_path, redis_url, openai_api), "OPENAI_API_KEY": "sk-wrong"}

    result = tracetune(
        "finetune", "start", "--provider", "openai", "--now", env=env, cwd=tmp_path, check=False
    )

    assert result.returncode == 4
    assert result.stderr.startswith("error: the OpenAI API at ")
    assert "refused the key" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (403, "Fine-tuning is no longer available for self-serve organizations.", "ft_ended"),
        (400, "Creating new fine-tuning jobs is not supported for this model any more.", None),
    ],
)
def test_a_platform_that_stopped_fine_tuning_is_answered_with_one_line(
    tmp_path: Path,
    redis_url: str,
    openai_api: OpenAIStandin,
    status: int,
    message: str,
    code: str | None,
) -> None:
    recorded_export(tmp_path, redis_url, reviewed=30, export_id="x-ft-refused")
    openai_api.state.refuse_jobs = (status, message, code or "")
    env = _env(tmp_path, redis_url, openai_api)

    result = tracetune(
        "finetune", "start", "--provider", "openai", "--now", env=env, cwd=tmp_path, check=False
    )

    assert result.returncode == 8, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: the OpenAI API at {openai_api.base_url}")
    assert f"refused to create the fine-tuning job (HTTP {status}: {message})" in lines[0]
    assert "--provider local" in lines[0]
    (record,) = FineTuneRecords(redis.Redis.from_url(redis_url)).recent()
    assert record.status == "failed"
    assert record.error is not None and record.error.startswith("RefusedError: ")
