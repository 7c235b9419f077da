"""The `local` provider: TRL SFT (or DPO for preference files) with LoRA on a local model folder.

Runs inside the worker's job, on the GPU when torch sees one, else on the CPU. The loss of
every logged step is kept on the job record; the LoRA adapter and tokenizer land in
`<state dir>/finetunes/<job id>`, which becomes the job's model id. A cancel sets the record's
status to `cancelling`; a training callback sees it at the next step and stops.

TRL, peft and transformers are imported inside the functions, so `tracetune --help` stays fast.
`create_tiny_model` builds a randomly initialised, few-kilobyte Llama and a byte-level tokenizer
locally, for trying the provider (and testing it) without downloading a model.
"""

from __future__ import annotations

import warnings
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
        record.status = "running"
        self.records.save(record)
        output = self.output_root / record.id
        history, cancelled = _train(record, options, output, self.records)
        record = self.records.get(record.id)
        record.metrics = {
            "loss": [{"step": step, "loss": loss} for step, loss in history],
            "device": _device(),
        }
        if cancelled:
            record.status = "cancelled"
        else:
            record.status = "succeeded"
            record.fine_tuned_model = str(output.resolve())
        record.events.append(f"{record.status} after {len(history)} logged steps on {_device()}")
        return self.records.save(record)

    def refresh(self, record: FineTuneRecord) -> FineTuneRecord:
        return record

    def cancel(self, record: FineTuneRecord) -> FineTuneRecord:
        record.status = "cancelling" if record.status == "running" else "cancelled"
        return self.records.save(record)


def _device() -> str:
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def _train(
    record: FineTuneRecord, options: dict[str, Any], output: Path, records: FineTuneRecords
) -> tuple[list[tuple[int, float]], bool]:
    """Train for the record's method; returns the logged (step, loss) pairs and if cancelled."""
    import datasets
    import torch
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

    cuda = torch.cuda.is_available()
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
        "use_cpu": not cuda,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "disable_tqdm": True,
        "seed": 0,
    }
    callback = StopWhenCancelled()
    trainer: Any
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer.train()
    trainer.save_model(str(output))
    history = [
        (int(entry["step"]), float(entry["loss"]))
        for entry in trainer.state.log_history
        if "loss" in entry and "step" in entry
    ]
    return history, StopWhenCancelled.cancelled


def _marks_generation(tokenizer: Any) -> bool:
    """Assistant-only loss needs a chat template that marks assistant turns."""
    template = tokenizer.chat_template or ""
    return "{% generation %}" in template
