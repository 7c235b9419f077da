"""Messages as the SDKs trace them → `Message`s: one reader for every provider's message shape.

A run's messages arrive as OpenAI chat dicts, LangChain messages (serialized with `lc: 1`,
dumped as dicts, or `(role, text)` pairs), Anthropic messages (content blocks: `text`,
`image`, `tool_use`, `tool_result`, `thinking`) or Responses API items (`message`,
`function_call`, `function_call_output`, `reasoning`). One raw message can become several:
an Anthropic user turn that returns three tool results becomes three tool messages. Reasoning
(Responses `reasoning` items, Anthropic `thinking` blocks) is never message text, and images
stay image parts, never text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from tracetune.sync.conversation import ImagePart, Message, Role, ToolCall


class NotThisShape(Exception):
    """Raised by readers and recognisers: the data is not the shape they read."""


_ROLES: dict[str, Role] = {
    "human": "user", "HumanMessage": "user", "HumanMessageChunk": "user", "user": "user",
    "ai": "assistant", "AIMessage": "assistant", "AIMessageChunk": "assistant",
    "assistant": "assistant", "system": "system", "SystemMessage": "system",
    "tool": "tool", "ToolMessage": "tool", "function": "tool", "developer": "system",
}  # fmt: skip

#: Content blocks whose `text` is what the message says (OpenAI, Responses, Anthropic, LangChain).
_TEXT_BLOCKS = frozenset({None, "text", "input_text", "output_text"})
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(value: Any) -> str:
    """Text safe to send anywhere: lone surrogates from bad bytes become U+FFFD."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = content_text(value)
    return _SURROGATES.sub("\ufffd", value)


def _image(block: dict[str, Any]) -> ImagePart | None:
    """An image block of any provider, or None when the block is not an image."""
    kind = block.get("type")
    if kind == "image_url":  # OpenAI chat: {"image_url": {"url": ...}} or {"image_url": "..."}
        found = block.get("image_url")
        url = found.get("url") if isinstance(found, dict) else found
        return ImagePart(url=str(url)) if url else None
    if kind == "input_image":  # Responses: {"image_url": "..."} (a `file_id` has no URL)
        url = block.get("image_url")
        return ImagePart(url=str(url)) if url else None
    if kind != "image":
        return None
    source = block.get("source")
    if isinstance(source, dict):  # Anthropic: base64 or url sources
        if source.get("type") == "base64" and source.get("data"):
            kind = str(source.get("media_type") or "image/png")
            return ImagePart(url=f"data:{kind};base64,{source['data']}", media_type=kind)
        if source.get("type") == "url" and source.get("url"):
            return ImagePart(url=str(source["url"]))
        return None
    found = block.get("mime_type") or block.get("media_type")  # LangChain standard blocks
    media = str(found) if found else None
    data = block.get("base64") or (
        block.get("data") if block.get("source_type") == "base64" else None
    )
    if data:
        media = media or "image/png"
        return ImagePart(url=f"data:{media};base64,{data}", media_type=media)
    url = block.get("url")
    return ImagePart(url=str(url), media_type=media) if url else None


def content_parts(content: Any) -> tuple[str, list[ImagePart]]:
    """A message's text and images, from a string or a list of content blocks.

    Blocks that are neither text nor images (tool uses and results, reasoning, thinking,
    audio, files) are left to the callers that understand them, and never become text.
    """
    if content is None:
        return "", []
    if isinstance(content, str):
        return clean_text(content), []
    if isinstance(content, dict):
        image = _image(content)
        if image is not None:
            return "", [image]
        content = [content]
    if not isinstance(content, list):
        return clean_text(json.dumps(content, ensure_ascii=False, default=str)), []
    texts: list[str] = []
    images: list[ImagePart] = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict):
            image = _image(block)
            if image is not None:
                images.append(image)
            elif block.get("type") in _TEXT_BLOCKS and "text" in block:
                texts.append(str(block.get("text") or ""))
            elif block.get("type") == "refusal":
                texts.append(str(block.get("refusal") or ""))
    return clean_text("".join(texts)), images


def content_text(content: Any) -> str:
    return content_parts(content)[0]


def _arguments(value: Any) -> str:
    """Tool arguments as the JSON string OpenAI sends (LangChain and Anthropic hold objects)."""
    if isinstance(value, str):
        return value
    return json.dumps(value if value is not None else {}, ensure_ascii=False, sort_keys=True)


def tool_calls(raw: Any) -> list[ToolCall] | None:
    """OpenAI-form ({function: {name, arguments}}) or LangChain-form ({name, args})."""
    if not raw:
        return None
    calls = []
    for call in raw:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if isinstance(function, dict):
            name, arguments = function.get("name"), function.get("arguments", "{}")
        else:
            name, arguments = call.get("name"), call.get("args", call.get("arguments", {}))
        calls.append(ToolCall(id=call.get("id"), name=str(name), arguments=_arguments(arguments)))
    return calls or None


def _tool_uses(content: Any) -> list[ToolCall] | None:
    """Anthropic `tool_use` blocks of an assistant message's content."""
    if not isinstance(content, list):
        return None
    calls = [
        ToolCall(
            id=block.get("id"),
            name=str(block.get("name")),
            arguments=_arguments(block.get("input")),
        )
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]
    return calls or None


def _tool_results(content: Any) -> list[Message]:
    """Anthropic `tool_result` blocks of a user message, as tool messages."""
    if not isinstance(content, list):
        return []
    return [
        Message(
            role="tool",
            content=content_text(block.get("content")),
            tool_call_id=block.get("tool_use_id"),
        )
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def _role_and_fields(raw: dict[str, Any]) -> tuple[Role, dict[str, Any]]:
    fields = raw
    role_name: Any = raw.get("role") or raw.get("type")
    if raw.get("lc") == 1 and isinstance(raw.get("kwargs"), dict):
        fields = raw["kwargs"]
        class_name = raw.get("id", [""])[-1] if isinstance(raw.get("id"), list) else ""
        role_name = fields.get("type") or class_name
    role = _ROLES.get(str(role_name))
    if role is None:
        raise NotThisShape(f"unknown message role {role_name!r}")
    return role, fields


def messages_from_any(raw: Any) -> list[Message]:
    """The message(s) one traced message stands for, whichever SDK traced it."""
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and isinstance(raw[0], str):
        role = _ROLES.get(raw[0])
        if role is None:
            raise NotThisShape(f"unknown message role {raw[0]!r}")
        text, images = content_parts(raw[1])
        return [
            Message(role=role, content=text, images=images if role == "user" and images else None)
        ]
    if not isinstance(raw, dict):
        raise NotThisShape("message is not an object")
    role, fields = _role_and_fields(raw)
    content = fields.get("content")
    text, images = content_parts(content)
    if role == "assistant":
        extra = fields.get("additional_kwargs") or {}
        calls = tool_calls(fields.get("tool_calls") or extra.get("tool_calls"))
        return [Message(role=role, content=text, tool_calls=calls or _tool_uses(content))]
    if role == "tool":
        return [
            Message(
                role=role,
                content=text,
                name=fields.get("name"),
                tool_call_id=fields.get("tool_call_id"),
            )
        ]
    results = _tool_results(content) if role == "user" else []
    if results and not text and not images:
        return results
    message = Message(role=role, content=text, images=images if role == "user" and images else None)
    return [*results, message]


def message_from_any(raw: Any) -> Message:
    """Exactly one message (an answer, a single output), whichever SDK traced it."""
    found = messages_from_any(raw)
    if len(found) != 1:
        raise NotThisShape("expected one message")
    return found[0]


def message_list(raw: Any) -> list[Message]:
    """A traced list of messages, flattened (LangChain batches arrive as `[[m1, m2, ...]]`)."""
    if (
        isinstance(raw, list)
        and raw
        and isinstance(raw[0], list)
        and not isinstance(raw[0][0], str)
    ):
        raw = raw[0]
    if not isinstance(raw, list) or not raw:
        raise NotThisShape("no messages")
    return [message for item in raw for message in messages_from_any(item)]


# --- the Responses API ---------------------------------------------------------------------


def _attach_call(messages: list[Message], call: ToolCall) -> None:
    """A function call joins the assistant turn it belongs to, or opens one."""
    last = messages[-1] if messages else None
    if last is not None and last.role == "assistant":
        last.tool_calls = [*(last.tool_calls or []), call]
    else:
        messages.append(Message(role="assistant", content="", tool_calls=[call]))


def response_items(items: Iterable[Any]) -> list[Message]:
    """Responses `input` or `output` items → messages; `reasoning` items are dropped."""
    messages: list[Message] = []
    for item in items:
        if isinstance(item, str):
            messages.append(Message(role="user", content=clean_text(item)))
            continue
        if not isinstance(item, dict):
            raise NotThisShape("Responses item is not an object")
        kind = item.get("type")
        if kind == "function_call":
            call = ToolCall(
                id=item.get("call_id") or item.get("id"),
                name=str(item.get("name")),
                arguments=_arguments(item.get("arguments")),
            )
            _attach_call(messages, call)
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else content_text(output)
            messages.append(
                Message(role="tool", content=clean_text(text), tool_call_id=item.get("call_id"))
            )
        elif kind in (None, "message") and "role" in item:
            message = message_from_any({"role": item["role"], "content": item.get("content")})
            previous = messages[-1] if messages else None
            if (
                message.role == "assistant"
                and previous is not None
                and previous.role == "assistant"
            ):
                previous.content = "\n".join(t for t in (previous.content, message.content) if t)
            else:
                messages.append(message)
        # `reasoning` items, built-in tool calls (web or file search...) and item references
        # are not turns of the conversation a model is trained on.
    return messages
