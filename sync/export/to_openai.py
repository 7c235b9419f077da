"""Training examples → OpenAI fine-tuning JSONL lines (chat SFT and preference / DPO).

Shapes follow OpenAI's fine-tuning data formats: SFT lines are `{"messages": [...]}`; earlier
assistant turns carry `"weight": 0` so that only the reviewed final answer is learned.
Preference lines are `{"input": {"messages": [...]}, "preferred_output": [...],
"non_preferred_output": [...]}`. An example whose model was offered tools carries them,
`{"tools": [...], "parallel_tool_calls": ...}`, beside `messages` (SFT) or inside `input`
(DPO), as OpenAI's function-calling fine-tuning expects. `parallel_tool_calls` is the run's own
setting; when the run did not record it, a turn with several calls says it was allowed, and
otherwise the key is left out (OpenAI's default). User images become `image_url` parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tracetune.sync.conversation import Message
from tracetune.sync.export.examples import PreferenceExample, SftExample


def _content(message: Message) -> str | list[dict[str, Any]]:
    """Text, or text and image parts when a user message carried images."""
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = (
        [{"type": "text", "text": message.content}] if message.content else []
    )
    parts += [{"type": "image_url", "image_url": {"url": image.url}} for image in message.images]
    return parts


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
        record["content"] = _content(message)
    if message.name and message.role in ("user", "assistant", "system"):
        record["name"] = message.name
    if message.role == "tool":
        record["tool_call_id"] = message.tool_call_id or "call_0"
    return record


def tool_fields(
    tools: Iterable[Mapping[str, Any]], parallel: bool | None, messages: Iterable[Message]
) -> dict[str, Any]:
    """`tools` and `parallel_tool_calls` for a line, or nothing when no tool was offered."""
    declared = [dict(tool) for tool in tools]
    if not declared:
        return {}
    fields: dict[str, Any] = {"tools": declared}
    if parallel is None and any(len(m.tool_calls or []) > 1 for m in messages):
        parallel = True
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    return fields


def sft_line(example: SftExample) -> dict[str, Any]:
    """`{"messages": [...]}` with every assistant turn but the last weighted 0."""
    last = len(example.messages) - 1
    messages = []
    for index, message in enumerate(example.messages):
        record = openai_message(message)
        if message.role == "assistant" and index != last:
            record["weight"] = 0
        messages.append(record)
    tools = tool_fields(example.tools, example.parallel_tool_calls, example.messages)
    return {"messages": messages, **tools}


def preference_line(example: PreferenceExample) -> dict[str, Any]:
    every = (*example.prompt, example.chosen, example.rejected)
    tools = tool_fields(example.tools, example.parallel_tool_calls, every)
    return {
        "input": {"messages": [openai_message(m) for m in example.prompt], **tools},
        "preferred_output": [openai_message(example.chosen)],
        "non_preferred_output": [openai_message(example.rejected)],
    }
