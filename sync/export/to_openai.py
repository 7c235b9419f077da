"""Training examples → OpenAI fine-tuning JSONL lines (chat SFT and preference / DPO).

Shapes follow OpenAI's fine-tuning data formats: SFT lines are `{"messages": [...]}`; earlier
assistant turns carry `"weight": 0` so that only the reviewed final answer is learned.
Preference lines are `{"input": {"messages": [...]}, "preferred_output": [...],
"non_preferred_output": [...]}`.
"""

from __future__ import annotations

from typing import Any

from tracetune.sync.conversation import Message
from tracetune.sync.export.examples import PreferenceExample, SftExample


def openai_message(message: Message) -> dict[str, Any]:
    """One message in the Chat Completions shape (tool calls as `function` objects)."""
    record: dict[str, Any] = {"role": message.role}
    if message.tool_calls:
        record["content"] = message.content or None
        record["tool_calls"] = [
            {
                "id": call.id or f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for index, call in enumerate(message.tool_calls)
        ]
    else:
        record["content"] = message.content
    if message.name and message.role in ("user", "assistant", "system"):
        record["name"] = message.name
    if message.role == "tool":
        record["tool_call_id"] = message.tool_call_id or "call_0"
    return record


def sft_line(example: SftExample) -> dict[str, Any]:
    """`{"messages": [...]}` with every assistant turn but the last weighted 0."""
    last = len(example.messages) - 1
    messages = []
    for index, message in enumerate(example.messages):
        record = openai_message(message)
        if message.role == "assistant" and index != last:
            record["weight"] = 0
        messages.append(record)
    return {"messages": messages}


def preference_line(example: PreferenceExample) -> dict[str, Any]:
    return {
        "input": {"messages": [openai_message(m) for m in example.prompt]},
        "preferred_output": [openai_message(example.chosen)],
        "non_preferred_output": [openai_message(example.rejected)],
    }
