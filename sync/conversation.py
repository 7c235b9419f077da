"""`Conversation`: the one record that every LangSmith shape becomes.

Readers produce it, the task-data layout serialises it into Label Studio, and the export turns
reviewed tasks back into it; nothing downstream looks at raw run shapes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """An assistant's request to call a tool; `arguments` stays a JSON string as OpenAI sends it."""

    id: str | None = None
    name: str
    arguments: str = "{}"


class ImagePart(BaseModel):
    """An image the user sent, kept as the model saw it: an http(s) URL or a `data:` URI.

    Images never become text: the export sends them back as image parts, and reviewers see
    them through Label Studio's `<Image>` tag, with a placeholder in the dialogue.
    """

    url: str
    media_type: str | None = None

    def placeholder(self) -> str:
        """What the dialogue shows where the image was (Paragraphs cannot show images)."""
        if self.url.startswith("data:"):
            size = len(self.url.partition(",")[2]) * 3 // 4
            kind = self.media_type or self.url[5:].partition(";")[0] or "image"
            return f"[image: {kind}, {max(1, round(size / 1024))} KB]"
        return f"[image: {self.url}]"


class Message(BaseModel):
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    images: list[ImagePart] | None = None

    def display_text(self) -> str:
        """Text for a reviewer: tool calls and images are named, so no bubble hides them."""
        parts = [self.content] if self.content else []
        parts += [image.placeholder() for image in self.images or []]
        for call in self.tool_calls or []:
            parts.append(f"[tool call] {call.name}({call.arguments})")
        return "\n".join(parts)


class ContextDoc(BaseModel):
    content: str
    source: str | None = None


class Feedback(BaseModel):
    key: str
    score: float | None = None
    value: Any = None
    comment: str | None = None


class Conversation(BaseModel):
    """A run as a conversation: the input messages followed by the final assistant answer.

    `tools` are the function definitions the model was offered, in OpenAI's chat shape
    (`{"type": "function", "function": {"name", "description", "parameters"}}`) whatever the
    provider, and `parallel_tool_calls` whether it could call several at once (None: unsaid);
    the export writes both into fine-tune lines so a tool call is learned with its tools.
    """

    run_id: str
    trace_id: str | None = None
    messages: list[Message]
    context_docs: list[ContextDoc] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    feedback: list[Feedback] = Field(default_factory=list)
    source_shape: str
    project: str | None = None
    start_time: datetime | None = None
    reference_example_id: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    parallel_tool_calls: bool | None = None

    @property
    def answer(self) -> str:
        """The final assistant message's text: what reviewers accept, edit or reject."""
        last = self.messages[-1] if self.messages else None
        return last.content if last is not None and last.role == "assistant" else ""

    @property
    def prompt_messages(self) -> list[Message]:
        """Everything before the final assistant answer."""
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[:-1]
        return list(self.messages)

    @property
    def prompt(self) -> str:
        """The last user message: the question a reviewer reads first."""
        for message in reversed(self.prompt_messages):
            if message.role == "user":
                return message.content
        return ""

    def input_fingerprint(self) -> str:
        """Hash of the input messages, so runs answering the same input can be paired."""
        payload = [m.model_dump(exclude_none=True) for m in self.prompt_messages]
        encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]
