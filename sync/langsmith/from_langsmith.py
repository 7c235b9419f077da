"""LangSmith run (as the SDK returns it, as a dict) → `Conversation`, or a reason to skip it.

Pure functions: no I/O, so every shape is tested on fixtures produced by the real SDK. Each
recogniser returns None when the run is not its shape; the first that matches wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tracetune.sync.conversation import ContextDoc, Conversation, Feedback, Message, Role, ToolCall
from tracetune.sync.langsmith.redaction import safe_metadata

#: Answers longer than this are skipped: nobody reviews them and they blow token limits.
MAX_TEXT_CHARS = 200_000

_INPUT_KEYS = ("question", "input", "query", "prompt", "user_input", "message", "text", "q")
_OUTPUT_KEYS = ("answer", "output", "result", "response", "text", "content", "generation")
_LC_ROLES: dict[str, Role] = {
    "human": "user", "HumanMessage": "user", "HumanMessageChunk": "user", "user": "user",
    "ai": "assistant", "AIMessage": "assistant", "AIMessageChunk": "assistant",
    "assistant": "assistant", "system": "system", "SystemMessage": "system",
    "tool": "tool", "ToolMessage": "tool", "function": "tool", "developer": "system",
}  # fmt: skip


_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Skip:
    """A run that cannot become a conversation, and the reason the summary counts."""

    run_id: str
    reason: str


class _NotThisShape(Exception):
    pass


def clean_text(value: Any) -> str:
    """Text safe to send anywhere: lone surrogates from bad bytes become U+FFFD."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = _content_text(value)
    return _SURROGATES.sub("\ufffd", value)


def _content_text(content: Any) -> str:
    """Flatten OpenAI / LangChain content blocks into text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") in (None, "text"):
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    if isinstance(content, dict) and "text" in content:
        return str(content["text"])
    return json.dumps(content, ensure_ascii=False, default=str)


def _tool_calls(raw: Any) -> list[ToolCall] | None:
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
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
        calls.append(ToolCall(id=call.get("id"), name=str(name), arguments=arguments))
    return calls or None


def message_from_any(raw: Any) -> Message:
    """One message from an OpenAI dict, a LangChain serialized message, or a (role, text) pair."""
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and isinstance(raw[0], str):
        role = _LC_ROLES.get(raw[0])
        if role is None:
            raise _NotThisShape(f"unknown message role {raw[0]!r}")
        return Message(role=role, content=clean_text(raw[1]))
    if not isinstance(raw, dict):
        raise _NotThisShape("message is not an object")
    fields = raw
    role_name: Any = raw.get("role") or raw.get("type")
    if raw.get("lc") == 1 and isinstance(raw.get("kwargs"), dict):
        fields = raw["kwargs"]
        class_name = raw.get("id", [""])[-1] if isinstance(raw.get("id"), list) else ""
        role_name = fields.get("type") or class_name
    role = _LC_ROLES.get(str(role_name))
    if role is None:
        raise _NotThisShape(f"unknown message role {role_name!r}")
    extra = fields.get("additional_kwargs") or {}
    calls = _tool_calls(fields.get("tool_calls") or extra.get("tool_calls"))
    return Message(
        role=role,
        content=clean_text(_content_text(fields.get("content"))),
        tool_calls=calls if role == "assistant" else None,
        name=fields.get("name") if role == "tool" else None,
        tool_call_id=fields.get("tool_call_id") if role == "tool" else None,
    )


def _messages(raw: Any) -> list[Message]:
    if isinstance(raw, list) and raw and isinstance(raw[0], list):
        raw = raw[0]  # LangChain batches: [[m1, m2, ...]]
    if not isinstance(raw, list) or not raw:
        raise _NotThisShape("no messages")
    return [message_from_any(m) for m in raw]


# --- recognisers: (inputs, outputs) -> (messages, shape) ---------------------------------


def _openai_chat(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Message]:
    choices = outputs.get("choices")
    if not isinstance(choices, list) or not choices or "messages" not in inputs:
        raise _NotThisShape("not an OpenAI chat completion")
    answer = message_from_any({"role": "assistant", **(choices[0].get("message") or {})})
    return [*_messages(inputs["messages"]), answer]


def _langchain_chat(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Message]:
    generations = outputs.get("generations")
    if "messages" not in inputs or not isinstance(generations, list) or not generations:
        raise _NotThisShape("not a LangChain chat model run")
    first = generations[0][0] if isinstance(generations[0], list) else generations[0]
    if isinstance(first, dict) and first.get("message"):
        answer = message_from_any(first["message"])
    elif isinstance(first, dict):
        answer = Message(role="assistant", content=clean_text(first.get("text")))
    else:
        raise _NotThisShape("generation is not an object")
    return [*_messages(inputs["messages"]), answer]


def _completion(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Message]:
    prompts, generations = inputs.get("prompts"), outputs.get("generations")
    if not isinstance(prompts, list) or not prompts or not isinstance(generations, list):
        raise _NotThisShape("not a completion run")
    first = generations[0][0] if generations and isinstance(generations[0], list) else None
    if not isinstance(first, dict):
        raise _NotThisShape("completion run without generations")
    return [
        Message(role="user", content=clean_text(prompts[0])),
        Message(role="assistant", content=clean_text(first.get("text"))),
    ]


def _pick(mapping: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in mapping and mapping[key] not in (None, ""):
            return mapping[key]
    if len(mapping) == 1:
        return next(iter(mapping.values()))
    return None


def _answer_from_value(value: Any, structured: bool) -> Message:
    if isinstance(value, dict) and ("lc" in value or "role" in value or "type" in value):
        message = message_from_any(value)
        if message.role != "assistant":
            raise _NotThisShape("output message is not from the assistant")
        return message
    if isinstance(value, (str, int, float)):
        return Message(role="assistant", content=clean_text(str(value)))
    if structured and isinstance(value, (dict, list)) and value:
        # Structured output under a known key (`result`, `answer`...) of a function returning
        # data is a valid answer to learn: keep it as JSON. Under an unknown key it is not.
        return Message(role="assistant", content=clean_text(json.dumps(value, ensure_ascii=False)))
    raise _NotThisShape("output is not text")


def _free_form(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Message]:
    """Chains and @traceable functions: {question: ...} → {answer: ...} and friends."""
    question = _pick({k: v for k, v in inputs.items() if k != "chat_history"}, _INPUT_KEYS)
    answer = _pick(outputs, _OUTPUT_KEYS)
    if question is None or answer is None:
        raise _NotThisShape("no recognisable question/answer keys")
    if isinstance(question, list):
        prompt = _messages(question)
    elif isinstance(question, (str, int, float)):
        prompt = [Message(role="user", content=clean_text(str(question)))]
    else:
        raise _NotThisShape("input is not text")
    history = inputs.get("chat_history")
    if isinstance(history, list) and history:
        prompt = [message_from_any(m) for m in history] + prompt
    return [*prompt, _answer_from_value(answer, any(k in outputs for k in _OUTPUT_KEYS))]


_RECOGNISERS: tuple[tuple[str, Callable[[dict[str, Any], dict[str, Any]], list[Message]]], ...] = (
    ("openai_chat", _openai_chat),
    ("langchain_chat", _langchain_chat),
    ("completion", _completion),
    ("free_form", _free_form),
)

# --- context, feedback, metadata ----------------------------------------------------------


def context_docs(children: list[dict[str, Any]]) -> list[ContextDoc]:
    """Documents returned by the run's retriever child runs, in order."""
    docs = []
    for child in sorted(children, key=lambda c: str(c.get("dotted_order") or c.get("start_time"))):
        if child.get("run_type") != "retriever":
            continue
        outputs = child.get("outputs") or {}
        # LangChain retrievers return {"documents": [...]}; @traceable ones {"output": [...]}.
        found = outputs.get("documents") or outputs.get("output") or []
        for doc in found if isinstance(found, list) else []:
            if isinstance(doc, dict):
                meta = doc.get("metadata") or {}
                content = doc.get("page_content", doc.get("content", ""))
                source = meta.get("source") or meta.get("title") if isinstance(meta, dict) else None
                docs.append(ContextDoc(content=clean_text(content), source=source))
            elif isinstance(doc, str):
                docs.append(ContextDoc(content=clean_text(doc)))
    return docs


def feedback_records(records: list[dict[str, Any]]) -> list[Feedback]:
    out = []
    for record in records:
        score = record.get("score")
        out.append(
            Feedback(
                key=str(record.get("key")),
                score=float(score) if isinstance(score, (int, float)) else None,
                value=record.get("value"),
                comment=record.get("comment"),
            )
        )
    return out


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _recognise(inputs: dict[str, Any], outputs: dict[str, Any]) -> tuple[str, list[Message]] | None:
    for shape, recognise in _RECOGNISERS:
        try:
            return shape, recognise(inputs, outputs)
        except (_NotThisShape, ValidationError, KeyError, IndexError, TypeError, AttributeError):
            continue
    return None


def convert_run(
    run: dict[str, Any],
    feedback: list[dict[str, Any]] | None = None,
    project: str | None = None,
    max_chars: int = MAX_TEXT_CHARS,
) -> Conversation | Skip:
    """The conversation of one root run (with its `child_runs`), or why it has none."""
    run_id = str(run.get("id") or "")
    if not run_id:
        return Skip("", "malformed run: no id")
    if run.get("error"):
        return Skip(run_id, "run failed with an error")
    inputs, outputs = run.get("inputs"), run.get("outputs")
    if not isinstance(inputs, dict) or not isinstance(outputs, dict) or not outputs:
        if run.get("end_time") is None and run.get("outputs") is None:
            return Skip(run_id, "run still in progress")
        return Skip(run_id, "no inputs or outputs")
    recognised = _recognise(inputs, outputs)
    if recognised is None:
        return Skip(run_id, "unknown run shape")
    shape, messages = recognised
    if messages[-1].role != "assistant" or not (messages[-1].content or messages[-1].tool_calls):
        return Skip(run_id, "empty answer")
    if any(len(m.content) > max_chars for m in messages):
        return Skip(run_id, f"text longer than {max_chars} characters")
    children = run.get("child_runs") or []
    docs = context_docs(children)
    return Conversation(
        run_id=run_id,
        trace_id=str(run.get("trace_id") or run_id),
        messages=messages,
        context_docs=docs,
        metadata=safe_metadata(run),
        feedback=feedback_records(feedback or []),
        source_shape="rag_chain" if docs and shape == "free_form" else shape,
        project=project,
        start_time=_parse_time(run.get("start_time")),
        reference_example_id=(
            str(run["reference_example_id"]) if run.get("reference_example_id") else None
        ),
    )
