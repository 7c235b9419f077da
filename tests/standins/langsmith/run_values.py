"""Values the API computes from a stored run: token usage, status, ancestors, sort order, fields."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_LC_USAGE = ("input_tokens", "output_tokens", "total_tokens")
_OPENAI_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


def _counts(usage: Any, names: tuple[str, str, str]) -> tuple[int, int, int] | None:
    """(prompt, completion, total) from a usage dict, None when it counts nothing."""
    if not isinstance(usage, dict):
        return None
    prompt, completion, total = (
        int(v) if isinstance(v := usage.get(name), (int, float)) else 0 for name in names
    )
    if not (prompt or completion or total):
        return None
    return prompt, completion, total or prompt + completion


def llm_usage(outputs: Any) -> tuple[int, int, int] | None:
    """Token counts of an LLM run, from where the SDKs put them in its outputs."""
    if not isinstance(outputs, dict):
        return None
    if isinstance(outputs.get("usage_metadata"), dict):  # wrap_openai, LangChain AIMessage
        return _counts(outputs["usage_metadata"], _LC_USAGE)
    llm_output = outputs.get("llm_output")
    if isinstance(llm_output, dict) and isinstance(llm_output.get("token_usage"), dict):
        return _counts(llm_output["token_usage"], _OPENAI_USAGE)
    if isinstance(outputs.get("usage"), dict):  # a raw OpenAI response
        return _counts(outputs["usage"], _OPENAI_USAGE)
    totals = [0, 0, 0]
    for generation in _flatten(outputs.get("generations")):
        message = generation.get("message") if isinstance(generation, dict) else None
        if isinstance(message, dict):
            fields = message.get("kwargs") if isinstance(message.get("kwargs"), dict) else message
            for i, n in enumerate(_counts(fields.get("usage_metadata"), _LC_USAGE) or (0, 0, 0)):
                totals[i] += n
    return _counts(dict(zip(_LC_USAGE, totals, strict=True)), _LC_USAGE)


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    elif value is not None:
        yield value


def flat_pairs(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`{"a": {"b": 1}}` → `("a.b", 1)`: the keys `input_key` / `output_key` match."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}{key}"
            if isinstance(item, dict):
                yield from flat_pairs(item, f"{path}.")
            else:
                yield path, item


def run_status(record: Mapping[str, Any]) -> str:
    if record["error"] is not None:
        return "error"
    return "pending" if record["end_time"] is None else "success"


def parent_ids(dotted_order: str) -> list[str]:
    """Ancestors from the dotted order `<time>Z<uuid>.<time>Z<uuid>...`, root first."""
    return [segment.split("Z", 1)[1] for segment in dotted_order.split(".")[:-1] if "Z" in segment]


def sort_key(record: Mapping[str, Any]) -> tuple[str, str]:
    return (record["start_time"], record["id"])


#: Fields `/runs/query` may return; `select` picks among them.
RUN_FIELDS = (
    "id", "name", "start_time", "run_type", "end_time", "extra", "error", "serialized", "events",
    "inputs", "outputs", "reference_example_id", "parent_run_id", "tags", "session_id",
    "trace_id", "dotted_order", "parent_run_ids", "child_run_ids", "status", "feedback_stats",
    "app_path", "manifest_id", "prompt_tokens", "completion_tokens", "total_tokens",
    "prompt_cost", "completion_cost", "total_cost", "first_token_time", "in_dataset", "s3_urls",
    "thread_id",
)  # fmt: skip
#: Returned whatever `select` says: the SDK's `Run` model cannot be built without them.
ALWAYS_SELECTED = ("id", "name", "start_time", "run_type", "trace_id", "dotted_order", "session_id")
#: `select` default: what `Client.list_runs` asks for, plus `serialized` which it never reads.
DEFAULT_SELECT = tuple(f for f in RUN_FIELDS if f not in ("serialized", "child_run_ids"))
