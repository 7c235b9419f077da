"""The OpenAI Responses API for the stand-in: `POST /v1/responses`, whole or streamed (SSE).

Bodies follow the `openai` SDK's models (`openai/types/responses/`): a `Response` object whose
`output` holds `reasoning`, `message` (`output_text` parts) and `function_call` items; with
`stream: true`, the event sequence the API sends (`response.created`, `response.in_progress`,
per item `response.output_item.added` ... `response.output_item.done`, then
`response.completed` carrying the whole response). `wrap_openai` traces either into the same
run shape, so both are worth having in fixtures.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, Response, jsonify, request

from standins.replies import Reply, Responder, body_digest, chunks, word_tokens


def _input_text(value: Any) -> str:
    """Every text of a Responses `input` (a string or items), for the usage numbers."""
    if isinstance(value, str):
        return value
    parts: list[str] = []
    for item in value or []:
        if not isinstance(item, Mapping):
            continue
        content = item.get("content", item.get("output", ""))
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return " ".join(parts)


def _tool(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A request tool as the API echoes it back: function tools get `strict`."""
    if definition.get("type") == "function":
        return {"strict": True, "description": None, **definition}
    return dict(definition)


def output_items(body: Mapping[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """The `output` list for a reply: reasoning first, then the message or the tool calls."""
    digest = body_digest(body)
    items: list[dict[str, Any]] = []
    if reply.reasoning:
        items.append(
            {
                "id": f"rs_{digest[:40]}",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": reply.reasoning}],
            }
        )
    if reply.content:
        items.append(
            {
                "id": f"msg_{digest[8:48]}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": reply.content,
                        "annotations": [],
                        "logprobs": [],
                    }
                ],
            }
        )
    for index, call in enumerate(reply.tool_calls):
        items.append(
            {
                "id": f"fc_{digest[16 + index : 56 + index]}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_{digest[24 + index : 48 + index]}",
                "name": call["name"],
                "arguments": json.dumps(call.get("arguments", {}), sort_keys=True),
            }
        )
    return items


def response_body(
    body: Mapping[str, Any], reply: Reply, sequence: int, status: str = "completed"
) -> dict[str, Any]:
    """A `Response` as the API returns it for a request body and the reply to give."""
    output = output_items(body, reply) if status == "completed" else []
    prompt = word_tokens(f"{body.get('instructions') or ''} {_input_text(body.get('input'))}")
    answer = word_tokens(reply.content or json.dumps(reply.tool_calls))
    reasoning = word_tokens(reply.reasoning) if reply.reasoning else 0
    created = int(time.time())
    return {
        "id": f"resp_{body_digest(body)[:40]}{sequence}",
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": created if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": body.get("model", "gpt-4.1-mini"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": [_tool(t) for t in body.get("tools") or []],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": answer + reasoning,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + answer + reasoning,
        },
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _item_events(item: dict[str, Any], index: int) -> Iterator[dict[str, Any]]:
    """The events that build one output item, in the API's order (without sequence numbers)."""
    added = {**item, "status": "in_progress"}
    if item["type"] == "message":
        added["content"] = []
    elif item["type"] == "function_call":
        added["arguments"] = ""
    elif item["type"] == "reasoning":
        added = {**item, "summary": []}
    yield {"type": "response.output_item.added", "output_index": index, "item": added}
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield {"type": "response.content_part.added", **where, "content_index": 0, "part": empty}
        for delta in chunks(text):
            yield {
                "type": "response.output_text.delta",
                **where,
                "content_index": 0,
                "delta": delta,
                "logprobs": [],
            }
        yield {
            "type": "response.output_text.done",
            **where,
            "content_index": 0,
            "text": text,
            "logprobs": [],
        }
        yield {
            "type": "response.content_part.done",
            **where,
            "content_index": 0,
            "part": item["content"][0],
        }
    elif item["type"] == "function_call":
        for delta in chunks(item["arguments"]):
            yield {"type": "response.function_call_arguments.delta", **where, "delta": delta}
        yield {
            "type": "response.function_call_arguments.done",
            **where,
            "arguments": item["arguments"],
        }
    elif item["type"] == "reasoning":
        text = item["summary"][0]["text"]
        part = {"type": "summary_text", "text": ""}
        yield {
            "type": "response.reasoning_summary_part.added",
            **where,
            "summary_index": 0,
            "part": part,
        }
        for delta in chunks(text):
            yield {
                "type": "response.reasoning_summary_text.delta",
                **where,
                "summary_index": 0,
                "delta": delta,
            }
        yield {
            "type": "response.reasoning_summary_text.done",
            **where,
            "summary_index": 0,
            "text": text,
        }
        yield {
            "type": "response.reasoning_summary_part.done",
            **where,
            "summary_index": 0,
            "part": {**part, "text": text},
        }
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def stream_events(body: Mapping[str, Any], reply: Reply, sequence: int) -> Iterator[str]:
    """The server-sent events of a streamed response, numbered as the API numbers them."""
    final = response_body(body, reply, sequence)
    pending = {**response_body(body, reply, sequence, status="in_progress"), "id": final["id"]}
    pending.pop("usage")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
    ]
    for index, item in enumerate(final["output"]):
        events.extend(_item_events(item, index))
    events.append({"type": "response.completed", "response": final})
    for number, event in enumerate(events):
        payload = json.dumps({**event, "sequence_number": number})
        yield f"event: {event['type']}\ndata: {payload}\n\n"


def _error(status: int, message: str, code: str | None = None) -> Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    response = jsonify({"error": error})
    response.status_code = status
    return response


def register_responses(
    app: Flask,
    api_key: str,
    respond: Responder,
    log: list[dict[str, Any]],
    lock: threading.Lock,
) -> None:
    """Add `POST /v1/responses` to the OpenAI stand-in's app (same key, responder and log)."""

    @app.post("/v1/responses")
    def responses() -> Response:
        if request.headers.get("Authorization") != f"Bearer {api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "input" not in body or "model" not in body:
            return _error(400, "Missing required parameter: 'input'.")
        with lock:
            log.append(body)
            sequence = len(log)
        reply = respond(body)
        if reply.error is not None:
            return _error(*reply.error)
        if body.get("stream"):
            return Response(stream_events(body, reply, sequence), mimetype="text/event-stream")
        return jsonify(response_body(body, reply, sequence))
