"""The `local` provider: TRL SFT (or DPO for preference files) with LoRA on a local model folder.

Runs inside the worker's job, on the GPU when torch sees one (bf16 where the GPU supports it,
else fp16), else on the CPU in fp32. The loss of every logged step and the measured steps/s are
kept on the job record; the LoRA adapter and tokenizer land in `<state dir>/finetunes/<job id>`,
which becomes the job's model id. A cancel sets the record's status to `cancelling`; a training
callback sees it at the next step and stops.

On several GPUs the same training runs under `accelerate launch` (`launch.py` in this package,
`deploy/accelerate/multi-gpu.yaml`): the Trainer shards batches itself, and only the main
process writes the job record.

TRL, peft and transformers are imported inside the functions, so `tracetune --help` stays fast.
`create_tiny_model` builds a randomly initialised, few-kilobyte Llama and a byte-level tokenizer
locally, for trying the provider (and testing it) without downloading a model.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.finetune.records import FineTuneRecord, FineTuneRecords
from tracetune.sync.settings import Settings

DEFAULTS: dict[str, Any] = {
    "n_epochs": 3,
    "max_steps": -1,
    "batch_size": 4,
    "learning_rate": 2e-4,
    "lora_r": 8,
    "lora_alpha": 16,
    "max_length": 2048,
    "beta": 0.1,
}

#: A ChatML-like template whose assistant turns are marked for assistant-only loss.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>"
    "{% endgeneration %}{% else %}{{ m['content'] }}<|im_end|>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def create_tiny_model(path: Path, hidden_size: int = 32, layers: int = 2) -> Path:
    """Save a randomly initialised tiny Llama and a byte-level tokenizer to `path`."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    transformers.logging.disable_progress_bar()

    specials = ["<|pad|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate(specials + alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    path.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@dataclass(frozen=True)
class Precision:
    """Where and in which float format training runs: chosen from what torch reports."""

    device: str
    use_cpu: bool
    bf16: bool
    fp16: bool

    @property
    def dtype_name(self) -> str:
        return "bfloat16" if self.bf16 else "float16" if self.fp16 else "float32"


def choose_precision(
    cuda_available: bool, bf16_supported: bool, device_name: str = ""
) -> Precision:
    """bf16 on a GPU that has it (Ampere and later), fp16 on older GPUs, fp32 on the CPU."""
    if not cuda_available:
        return Precision("cpu", use_cpu=True, bf16=False, fp16=False)
    return Precision(
        f"cuda ({device_name})" if device_name else "cuda",
        use_cpu=False,
        bf16=bf16_supported,
        fp16=not bf16_supported,
    )


def detected_precision() -> Precision:
    import torch

    if not torch.cuda.is_available():
        return choose_precision(False, False)
    return choose_precision(True, torch.cuda.is_bf16_supported(), torch.cuda.get_device_name(0))


def is_main_process() -> bool:
    """False in the extra processes `accelerate launch` starts on a multi-GPU machine."""
    return int(os.environ.get("RANK", "0")) == 0


class LocalProvider:
    def __init__(self, settings: Settings, records: FineTuneRecords) -> None:
        self.records = records
        self.output_root = settings.tracetune_state_dir / "finetunes"

    def _options(self, record: FineTuneRecord) -> dict[str, Any]:
        unknown = set(record.hyperparameters) - set(DEFAULTS)
        if unknown:
            raise InvalidInputError(f"unknown local hyperparameters {sorted(unknown)}")
        if not Path(record.model, "config.json").exists():
            raise InvalidInputError(
                f"--model must be a local model folder with config.json, got {record.model!r} "
                "(nothing is downloaded here)"
            )
        return {**DEFAULTS, **record.hyperparameters}

    def start(self, record: FineTuneRecord) -> FineTuneRecord:
        options = self._options(record)
        main = is_main_process()
        if main:
            record.status = "running"
            self.records.save(record)
        output = self.output_root / record.id
        precision = detected_precision()
        run = _train(record, options, output, self.records, precision)
        if not main:
            return record
        record = self.records.get(record.id)
        record.metrics = {
            "loss": [{"step": step, "loss": loss} for step, loss in run.history],
            "device": precision.device,
            "dtype": precision.dtype_name,
            "processes": run.processes,
            "train_runtime_s": round(run.runtime_s, 3),
            "steps_per_second": round(run.steps / run.runtime_s, 3) if run.runtime_s else None,
        }
        if run.cancelled:
            record.status = "cancelled"
        else:
            record.status = "succeeded"
            record.fine_tuned_model = str(output.resolve())
        record.events.append(
            f"{record.status} after {len(run.history)} logged steps on {precision.device} "
            f"({precision.dtype_name}, {record.metrics['steps_per_second']} steps/s)"
        )
        return self.records.save(record)

    def refresh(self, record: FineTuneRecord) -> FineTuneRecord:
        return record

    def cancel(self, record: FineTuneRecord) -> FineTuneRecord:
        record.status = "cancelling" if record.status == "running" else "cancelled"
        return self.records.save(record)


@dataclass(frozen=True)
class TrainingRun:
    history: list[tuple[int, float]]
    cancelled: bool
    steps: int
    runtime_s: float
    processes: int


def _train(
    record: FineTuneRecord,
    options: dict[str, Any],
    output: Path,
    records: FineTuneRecords,
    precision: Precision,
) -> TrainingRun:
    """Train for the record's method: the logged (step, loss) pairs, steps and time taken."""
    import datasets
    import transformers
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    # The record keeps the losses; the worker's log and the CLI stay readable.
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    class StopWhenCancelled(TrainerCallback):
        cancelled = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if records.get(record.id).status == "cancelling":
                StopWhenCancelled.cancelled = True
                control.should_training_stop = True
            return control

    data_files = {split: path for split, path in record.files.items()}
    dataset = datasets.load_dataset("json", data_files=data_files)
    tokenizer = AutoTokenizer.from_pretrained(record.model)
    model = AutoModelForCausalLM.from_pretrained(record.model)
    peft_config = LoraConfig(
        r=options["lora_r"],
        lora_alpha=options["lora_alpha"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    common: dict[str, Any] = {
        "output_dir": str(output),
        "num_train_epochs": options["n_epochs"],
        "max_steps": options["max_steps"],
        "per_device_train_batch_size": options["batch_size"],
        "learning_rate": options["learning_rate"],
        "max_length": options["max_length"],
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": precision.use_cpu,
        "bf16": precision.bf16,
        "fp16": precision.fp16,
        "disable_tqdm": True,
        "seed": 0,
    }
    callback = StopWhenCancelled()
    trainer: Any
    # TRL and transformers announce renames (FutureWarning) on every config: not the user's to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if record.method == "sft":
            trainer = SFTTrainer(
                model=model,
                args=SFTConfig(**common, assistant_only_loss=_marks_generation(tokenizer)),
                train_dataset=dataset["train"],
                eval_dataset=dataset.get("validation"),
                processing_class=tokenizer,
                peft_config=peft_config,
                callbacks=[callback],
            )
        else:
            trainer = DPOTrainer(
                model=model,
                args=DPOConfig(**common, beta=options["beta"]),
                train_dataset=dataset["train"],
                eval_dataset=dataset.get("validation"),
                processing_class=tokenizer,
                peft_config=peft_config,
                callbacks=[callback],
            )
        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        trainer.train()
    runtime = time.perf_counter() - started
    trainer.save_model(str(output))
    history = [
        (int(entry["step"]), float(entry["loss"]))
        for entry in trainer.state.log_history
        if "loss" in entry and "step" in entry
    ]
    return TrainingRun(
        history=history,
        cancelled=StopWhenCancelled.cancelled,
        steps=int(trainer.state.global_step),
        runtime_s=runtime,
        processes=int(trainer.args.world_size),
    )


def _marks_generation(tokenizer: Any) -> bool:
    """Assistant-only loss needs a chat template that marks assistant turns."""
    template = tokenizer.chat_template or ""
    return "{% generation %}" in template
