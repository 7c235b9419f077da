"""Training examples → TRL dataset rows: conversational (`messages`) and preference.

TRL's conversational formats: SFT rows are `{"messages": [{"role", "content"}, ...]}`,
preference rows `{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}`. Tool calls
ride along in the `tool_calls` shape chat templates accept, `arguments` kept as the JSON string
the model produced (one column type in Parquet, whatever the tool). The same rows go to JSONL
and Parquet.
"""

from __future__ import annotations

from typing import Any

from tracetune.sync.conversation import Message
from tracetune.sync.export.examples import PreferenceExample, SftExample


def trl_message(message: Message) -> dict[str, Any]:
    record: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        record["tool_calls"] = [
            {
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.role == "tool" and message.name:
        record["name"] = message.name
    return record


def sft_row(example: SftExample) -> dict[str, Any]:
    return {"messages": [trl_message(m) for m in example.messages]}


def preference_row(example: PreferenceExample) -> dict[str, Any]:
    return {
        "prompt": [trl_message(m) for m in example.prompt],
        "chosen": [trl_message(example.chosen)],
        "rejected": [trl_message(example.rejected)],
    }
