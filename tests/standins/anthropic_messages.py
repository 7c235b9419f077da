"""An Anthropic Messages API stand-in: `POST /v1/messages`, whole or streamed (SSE).

For tracing the real `anthropic` SDK (wrapped with `langsmith.wrappers.wrap_anthropic`, or
under `langchain-anthropic`) without a network. Bodies follow the SDK's models
(`anthropic/types/message.py`, `raw_message_stream_event.py`): a `message` whose `content`
holds `thinking`, `text` and `tool_use` blocks; with `stream: true`, `message_start`, `ping`,
per block `content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`,
`thinking_delta`, `signature_delta`) / `content_block_stop`, then `message_delta` and
`message_stop`. The key is accepted as the SDK 2.x sends it (`Authorization: Bearer`) and as
the API's own examples and older SDKs do (`x-api-key`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, Response, jsonify, request

from standins import BackgroundServer
from standins.replies import Reply, Responder, ScriptedReplies, body_digest, chunks, word_tokens


def _texts(content: Any) -> str:
    """The words of a `system` or message `content` (string or blocks), for usage numbers."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, Mapping):
            parts.append(str(block.get("text") or ""))
            if block.get("type") == "tool_result":
                parts.append(_texts(block.get("content")))
    return " ".join(parts)


def _cached(body: Mapping[str, Any]) -> bool:
    """Whether any system block asked for prompt caching (`cache_control`)."""
    system = body.get("system")
    return isinstance(system, list) and any(
        isinstance(b, Mapping) and b.get("cache_control") for b in system
    )


def content_blocks(body: Mapping[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """The message's `content`: thinking first, then text, then tool uses."""
    digest = body_digest(body)
    blocks: list[dict[str, Any]] = []
    if reply.reasoning:
        blocks.append(
            {"type": "thinking", "thinking": reply.reasoning, "signature": f"Eo{digest[:46]}=="}
        )
    if reply.content:
        blocks.append({"type": "text", "text": reply.content})
    for index, call in enumerate(reply.tool_calls):
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_01{digest[index : index + 22]}",
                "name": call["name"],
                "input": call.get("arguments", {}),
            }
        )
    return blocks


def _usage(body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
    words = (
        _texts(body.get("system"))
        + " "
        + " ".join(
            _texts(m.get("content")) for m in body.get("messages") or [] if isinstance(m, Mapping)
        )
    )
    prompt = word_tokens(words)
    cached = prompt // 2 if _cached(body) else 0
    answer = word_tokens(
        " ".join([reply.reasoning or "", reply.content or "", json.dumps(reply.tool_calls)])
    )
    return {
        "input_tokens": prompt - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": answer,
        "service_tier": "standard",
    }


def message(body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
    """A `Message` as the API returns it, for a request body and the reply to give."""
    return {
        "id": f"msg_01{body_digest(body)[:22]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-sonnet-4-5"),
        "content": content_blocks(body, reply),
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": _usage(body, reply),
    }


def _block_events(block: dict[str, Any], index: int) -> Iterator[dict[str, Any]]:
    if block["type"] == "text":
        yield {
            "type": "content_block_start",
            "index": index,
            "content_block": {**block, "text": ""},
        }
        for delta in chunks(block["text"]):
            yield {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": delta},
            }
    elif block["type"] == "tool_use":
        start = {**block, "input": {}}
        yield {"type": "content_block_start", "index": index, "content_block": start}
        for delta in chunks(json.dumps(block["input"], sort_keys=True)):
            yield {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": delta},
            }
    elif block["type"] == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        yield {"type": "content_block_start", "index": index, "content_block": start}
        for delta in chunks(block["thinking"]):
            yield {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "thinking_delta", "thinking": delta},
            }
        yield {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "signature_delta", "signature": block["signature"]},
        }
    yield {"type": "content_block_stop", "index": index}


def stream_events(body: Mapping[str, Any], reply: Reply) -> Iterator[str]:
    """The server-sent events of a streamed message, in the API's order."""
    final = message(body, reply)
    usage = final["usage"]
    start = {
        **final,
        "content": [],
        "stop_reason": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(final["content"]):
        events.extend(_block_events(block, index))
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": final["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    for event in events:
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


def _error(status: int, kind: str, text: str) -> Response:
    response = jsonify({"type": "error", "error": {"type": kind, "message": text}})
    response.status_code = status
    return response


_ERROR_KINDS = {400: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}


def create_app(
    api_key: str, responder: Responder, log: list[dict[str, Any]] | None = None
) -> Flask:
    """The Messages stand-in; every request body is appended to `log`."""
    requests_seen = log if log is not None else []
    lock = threading.Lock()
    app = Flask("anthropic-messages-standin")

    @app.post("/v1/messages")
    def messages() -> Response:
        sent = request.headers.get("x-api-key") or request.headers.get("Authorization", "")
        if sent.removeprefix("Bearer ") != api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "invalid_request_error", "messages: Field required")
        if "max_tokens" not in body:
            return _error(400, "invalid_request_error", "max_tokens: Field required")
        with lock:
            requests_seen.append(body)
        reply = responder(body)
        if reply.error is not None:
            status, text = reply.error
            return _error(status, _ERROR_KINDS.get(status, "api_error"), text)
        if body.get("stream"):
            return Response(stream_events(body, reply), mimetype="text/event-stream")
        return jsonify(message(body, reply))

    return app


class AnthropicStandIn:
    """The Messages stand-in on a free loopback port; `base_url` is what `Anthropic()` takes."""

    def __init__(self, api_key: str = "sk-ant-standin", responder: Responder | None = None):
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.replies = ScriptedReplies()
        self._server = BackgroundServer(
            create_app(api_key, responder or self.replies, self.requests)
        )
        self.base_url = self._server.url

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> AnthropicStandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
