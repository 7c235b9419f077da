"""What a model stand-in answers: one `Reply` per request, whatever the provider's wire shape.

The OpenAI (chat completions and Responses) and Anthropic stand-ins each turn a `Reply` into
their API's body, streamed or not, so a fixture generator scripts a conversation once and
traces it through any SDK.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    """What the model answers: text, tool calls as `{"name": ..., "arguments": {...}}`,
    reasoning (a Responses reasoning summary, an Anthropic thinking block), or an API error
    `(status, message)` such as `(429, "Rate limit reached")`."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: tuple[int, str] | None = None
    reasoning: str | None = None


Responder = Callable[[Mapping[str, Any]], Reply]


class ScriptedReplies:
    """A responder that answers with queued replies, in order: the script queues one per call."""

    def __init__(self) -> None:
        self._queue: list[Reply] = []
        self._lock = threading.Lock()

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def __call__(self, body: Mapping[str, Any]) -> Reply:
        with self._lock:
            if not self._queue:
                raise RuntimeError("a model stand-in was called without a queued reply")
            return self._queue.pop(0)


def body_digest(body: Mapping[str, Any]) -> str:
    """A stable hex digest of a request body: ids derived from it repeat from run to run."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def word_tokens(text: str) -> int:
    """A stable, rough token count (words), so usage numbers are deterministic."""
    return max(1, len(text.split()))


def chunks(text: str, size: int = 12) -> list[str]:
    """Text cut into deltas the way a stream sends it (fixed size, so fixtures repeat)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
