"""Training examples → TRL dataset rows: conversational (`messages`) and preference.

TRL's conversational formats: SFT rows are `{"messages": [{"role", "content"}, ...]}`,
preference rows `{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}`. Tool calls
ride along in the `tool_calls` shape chat templates accept, `arguments` kept as the JSON string
the model produced (one column type in Parquet, whatever the tool). The tools the model was
offered go in a `tools` column as a JSON string, which TRL's SFT and DPO trainers decode and
hand to the chat template; rows without tools have no such key. Images are not written here:
TRL's vision format needs the image bytes loaded in an `images` column, which the text rows
of these files do not carry. The same rows go to JSONL and Parquet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
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


def _tools(tools: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    declared = [dict(tool) for tool in tools]
    return {"tools": json.dumps(declared, ensure_ascii=False)} if declared else {}


def sft_row(example: SftExample) -> dict[str, Any]:
    return {"messages": [trl_message(m) for m in example.messages], **_tools(example.tools)}


def preference_row(example: PreferenceExample) -> dict[str, Any]:
    return {
        "prompt": [trl_message(m) for m in example.prompt],
        "chosen": [trl_message(example.chosen)],
        "rejected": [trl_message(example.rejected)],
        **_tools(example.tools),
    }
