"""The `local` provider: a few LoRA steps of a tiny random Llama on the CPU, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from finetune_exports import recorded_export
from worker_env import tracetune, worker_env

from tracetune.sync.finetune.local_trl import choose_precision
from tracetune.sync.finetune.records import FineTuneRecord

pytestmark = pytest.mark.integration


@pytest.fixture
def tiny_model(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "tiny-llama"
    out = tracetune(
        "finetune", "tiny-model", str(path), env=worker_env(tmp_path, redis_url), cwd=tmp_path
    )
    assert out.stdout.strip() == f"tiny model written to {path}"
    return path


def test_sft_then_dpo_on_a_tiny_model_record_their_losses(
    tmp_path: Path, redis_url: str, tiny_model: Path
) -> None:
    recorded_export(tmp_path, redis_url, reviewed=24, export_id="x-local")
    env = worker_env(tmp_path, redis_url)

    sft = tracetune(
        "finetune", "start", "--provider", "local", "--model", str(tiny_model),
        "--param", "max_steps=3", "--param", "batch_size=2", "--now", "--json",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    record = FineTuneRecord.model_validate_json(sft.stdout.strip().splitlines()[-1])

    assert record.status == "succeeded", record.error
    assert [entry["step"] for entry in record.metrics["loss"]] == [1, 2, 3]
    assert all(entry["loss"] > 0 for entry in record.metrics["loss"])
    assert record.metrics["device"] == "cpu"
    assert record.metrics["dtype"] == "float32"
    assert record.metrics["processes"] == 1
    assert record.metrics["steps_per_second"] > 0
    assert record.metrics["train_runtime_s"] > 0
    adapter = Path(record.fine_tuned_model or "")
    assert adapter == (tmp_path / "state" / "finetunes" / record.id).resolve()
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    assert Path(record.files["train"]).name == "trl_sft.train.jsonl"

    dpo = tracetune(
        "finetune", "start", "--provider", "local", "--method", "dpo", "--model",
        str(tiny_model), "--param", "max_steps=2", "--now", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert "local/dpo  succeeded" in dpo.stdout
    assert "loss: 0.6931 (step 1) →" in dpo.stdout  # DPO starts at log(2): policy == reference
    listed = tracetune("finetune", "list", env=env, cwd=tmp_path).stdout.splitlines()
    assert [line.split()[1:3] for line in listed] == [
        ["local/dpo", "succeeded"],
        ["local/sft", "succeeded"],
    ]


def test_a_missing_local_model_is_refused_before_training(tmp_path: Path, redis_url: str) -> None:
    recorded_export(tmp_path, redis_url, reviewed=12, export_id="x-local-missing")
    result = tracetune(
        "finetune", "start", "--provider", "local", "--model", "meta-llama/Llama-3-8B", "--now",
        env=worker_env(tmp_path, redis_url), cwd=tmp_path, check=False,
    )  # fmt: skip

    assert result.returncode == 6
    assert result.stderr.strip() == (
        "error: --model must be a local model folder with config.json, got "
        "'meta-llama/Llama-3-8B' (nothing is downloaded here)"
    )


def test_the_precision_follows_what_torch_reports() -> None:
    """bf16 on a GPU that has it, fp16 on an older GPU, fp32 on the CPU (this machine)."""
    assert choose_precision(True, True, "NVIDIA H100").dtype_name == "bfloat16"
    h100 = choose_precision(True, True, "NVIDIA H100")
    assert (h100.device, h100.use_cpu, h100.bf16, h100.fp16) == (
        "cuda (NVIDIA H100)",
        False,
        True,
        False,
    )
    assert choose_precision(True, False, "Tesla T4").dtype_name == "float16"
    cpu = choose_precision(False, False)
    assert (cpu.device, cpu.use_cpu, cpu.dtype_name) == ("cpu", True, "float32")


def test_a_prepared_job_runs_with_finetune_train_as_accelerate_would_start_it(
    tmp_path: Path, redis_url: str, tiny_model: Path
) -> None:
    """`start --prepare` saves the job; `finetune train ID` (what `accelerate launch -m
    tracetune.sync.cli finetune train ID` runs on each GPU) trains and registers it."""
    from accelerate.commands.config.config_args import ClusterConfig

    recorded_export(tmp_path, redis_url, reviewed=24, export_id="x-prepared")
    env = worker_env(tmp_path, redis_url, tracetune_registry_uri=f"sqlite:///{tmp_path}/r.db")
    prepared = tracetune(
        "finetune", "start", "--provider", "local", "--model", str(tiny_model),
        "--param", "max_steps=2", "--prepare", "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    record = FineTuneRecord.model_validate_json(prepared.stdout)
    assert (record.status, record.rq_job_id) == ("queued", None)

    trained = tracetune("finetune", "train", record.id, env=env, cwd=tmp_path).stdout
    assert f"{record.id}  local/sft  succeeded" in trained
    assert "registered as model version 1" in trained
    config = ClusterConfig.from_yaml_file(
        str(Path(__file__).resolve().parents[1] / "deploy" / "accelerate" / "multi-gpu.yaml")
    )
    assert (config.distributed_type.value, config.mixed_precision) == ("MULTI_GPU", "bf16")
