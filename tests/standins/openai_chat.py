"""A small OpenAI stand-in: `POST /v1/chat/completions` and `POST /v1/responses`, real shapes.

For tracing the real `openai` SDK (wrapped with `langsmith.wrappers.wrap_openai`, or under
`langchain-openai`) without a network: the answer to a request comes from a responder
function, so fixture generators decide what the "model" says, including `tool_calls`. Chat
completions are answered whole; the Responses API (`openai_responses.py`) also streams.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request

from standins import BackgroundServer
from standins.openai_responses import register_responses
from standins.replies import Reply, Responder, body_digest, word_tokens

__all__ = ["OpenAIChatStandIn", "Reply", "Responder", "completion", "create_app"]


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def default_responder(answers: Mapping[str, str] | None = None) -> Responder:
    """Canned answers by the last user message; tools are called once, then summarised.

    - the last message is a tool result: answer from it;
    - tools are offered and none was called yet: call the first one with the user's text;
    - otherwise: `answers[last user text]`, or an echo of it.
    """
    known = dict(answers or {})

    def respond(body: Mapping[str, Any]) -> Reply:
        messages = list(body.get("messages") or [])
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return Reply(content=f"According to the tool: {_text(last.get('content'))}")
        user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        question = _text(user.get("content"))
        tools = body.get("tools") or []
        if tools:
            name = tools[0].get("function", {}).get("name", "tool")
            return Reply(tool_calls=[{"name": name, "arguments": {"query": question}}])
        return Reply(content=known.get(question, f"You asked: {question}"))

    return respond


def completion(body: Mapping[str, Any], reply: Reply, sequence: int) -> dict[str, Any]:
    """A `ChatCompletion` as OpenAI returns it, for a request body and the reply to give."""
    digest = body_digest(body)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{digest[i * 8 : i * 8 + 24]}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": json.dumps(call.get("arguments", {}), sort_keys=True),
                },
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    prompt = sum(word_tokens(_text(m.get("content"))) for m in body.get("messages") or [])
    answer = word_tokens(reply.content or json.dumps(reply.tool_calls))
    return {
        "id": f"chatcmpl-{digest[:24]}{sequence}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "gpt-4o-mini"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": answer,
            "total_tokens": prompt + answer,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_standin",
    }


def _error(status: int, message: str, code: str | None = None) -> Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    response = jsonify({"error": error})
    response.status_code = status
    return response


def create_app(
    api_key: str, responder: Responder | None = None, log: list[dict[str, Any]] | None = None
) -> Flask:
    """The OpenAI stand-in; every request body (both endpoints) is appended to `log`."""
    respond = responder or default_responder()
    requests_seen = log if log is not None else []
    lock = threading.Lock()
    app = Flask("openai-chat-standin")

    @app.post("/v1/chat/completions")
    def chat_completions() -> Response:
        if request.headers.get("Authorization") != f"Bearer {api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property")
        if body.get("stream"):
            return _error(400, "streaming is not supported by this stand-in")
        with lock:
            requests_seen.append(body)
            sequence = len(requests_seen)
        reply = respond(body)
        if reply.error is not None:
            return _error(*reply.error)
        return jsonify(completion(body, reply, sequence))

    register_responses(app, api_key, respond, requests_seen, lock)
    return app


class OpenAIChatStandIn:
    """The OpenAI stand-in on a free loopback port; `base_url` is what `OpenAI()` takes."""

    def __init__(self, api_key: str = "sk-standin", responder: Responder | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._server = BackgroundServer(create_app(api_key, responder, self.requests))
        self.base_url = f"{self._server.url}/v1"

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> OpenAIChatStandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
