"""LangSmith run (as the SDK returns it, as a dict) → `Conversation`, or a reason to skip it.

Pure functions: no I/O, so every shape is tested on fixtures produced by the real SDKs. Each
recogniser reads a `RunView` and raises `NotThisShape` when the run is not its shape; the
first that matches wins. Runs that are parts of a conversation rather than one (tool runs,
LangGraph's node steps) are skipped with their own reason before any recogniser looks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tracetune.sync.conversation import ContextDoc, Conversation, Feedback, Message
from tracetune.sync.langsmith.free_form import (
    INPUT_KEYS,
    OUTPUT_KEYS,
    pick,
    state_input,
    state_output,
)
from tracetune.sync.langsmith.messages import (
    NotThisShape,
    clean_text,
    content_parts,
    message_from_any,
    message_list,
    response_items,
    tool_calls,
)
from tracetune.sync.langsmith.redaction import safe_metadata
from tracetune.sync.langsmith.tools import model_calls_tools, run_tools

#: Answers longer than this are skipped: nobody reviews them and they blow token limits.
MAX_TEXT_CHARS = 200_000
#: Images (data URIs included) above this many characters in one run are not put in a task.
MAX_IMAGE_CHARS = 8_000_000

TOOL_RUN = "tool run: reviewed inside the conversation that called it"
GRAPH_STEP = "LangGraph node step: review the graph's root run or its llm runs"
INNER_STEP = "inner chain step: no conversation of its own"
#: Run types that are steps of a chain (documents, templates, parsing), never a conversation.
_STEP_TYPES = frozenset({"retriever", "prompt", "parser", "embedding"})
#: Integrations LangGraph and LangChain agents stamp on their runs' metadata.
_GRAPH_INTEGRATIONS = frozenset({"langgraph", "langchain_create_agent"})
_COMMAND_KEYS = frozenset({"graph", "update", "resume", "goto"})


@dataclass(frozen=True)
class Skip:
    """A run that cannot become a conversation, and the reason the summary counts."""

    run_id: str
    reason: str


@dataclass(frozen=True)
class RunView:
    """What recognisers read of a run: its data, its kind, and its child runs in order."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    run_type: str = "chain"
    name: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, run: Mapping[str, Any]) -> RunView:
        extra = run.get("extra") or {}
        metadata = extra.get("metadata") if isinstance(extra, Mapping) else None
        children = sorted(
            run.get("child_runs") or [],
            key=lambda c: str(c.get("dotted_order") or c.get("start_time")),
        )
        return cls(
            inputs=run.get("inputs") or {},
            outputs=run.get("outputs") or {},
            run_type=str(run.get("run_type") or "chain"),
            name=str(run.get("name") or ""),
            metadata=metadata if isinstance(metadata, Mapping) else {},
            children=tuple(children),
        )

    @property
    def from_graph(self) -> bool:
        """A LangGraph graph's own run (a root, or a subgraph): its nodes are its children."""
        if self.metadata.get("ls_integration") in _GRAPH_INTEGRATIONS:
            return True
        return self.name == "LangGraph" or any(
            (c.get("extra") or {}).get("metadata", {}).get("langgraph_node") for c in self.children
        )


def _is_commands(outputs: Mapping[str, Any]) -> bool:
    """LangGraph `Command` objects as a node's output: `{"output": [{graph, update, ...}]}`."""
    found = outputs.get("output")
    return (
        isinstance(found, list)
        and bool(found)
        and all(isinstance(c, dict) and set(c) >= _COMMAND_KEYS for c in found)
    )


def _step_skip(view: RunView) -> str | None:
    """Why a run is a part of a conversation rather than one, if it is."""
    if view.run_type == "tool":
        return TOOL_RUN
    if view.run_type in _STEP_TYPES:
        return f"{view.run_type} run: a step of a chain, not a conversation"
    if view.run_type != "llm" and (
        view.metadata.get("langgraph_node") or _is_commands(view.outputs)
    ):
        return GRAPH_STEP
    return None


def _merged_answer(messages: list[Message]) -> Message:
    """One assistant turn from the answer's parts (a Responses output can hold several).

    An output of reasoning alone is an empty answer, never a reason to try other shapes.
    """
    answers = [m for m in messages if m.role == "assistant"]
    calls = [call for m in answers for call in m.tool_calls or []]
    return Message(
        role="assistant",
        content="\n".join(m.content for m in answers if m.content),
        tool_calls=calls or None,
    )


# --- recognisers: RunView -> messages -------------------------------------------------------


def _openai_chat(view: RunView) -> list[Message]:
    choices = view.outputs.get("choices")
    if not isinstance(choices, list) or not choices or "messages" not in view.inputs:
        raise NotThisShape("not an OpenAI chat completion")
    answer = message_from_any({"role": "assistant", **(choices[0].get("message") or {})})
    return [*message_list(view.inputs["messages"]), answer]


def _openai_responses(view: RunView) -> list[Message]:
    """`client.responses.create`: `instructions` → system, `input` → messages, `output` items."""
    output = view.outputs.get("output")
    if view.outputs.get("object") != "response" or not isinstance(output, list):
        raise NotThisShape("not an OpenAI Responses API response")
    instructions = view.inputs.get("instructions", view.outputs.get("instructions"))
    prompt: list[Message] = []
    if isinstance(instructions, str) and instructions.strip():
        prompt.append(Message(role="system", content=clean_text(instructions)))
    elif isinstance(instructions, list):
        prompt += [
            Message(role="system", content=m.content)
            for m in response_items(instructions)
            if m.content
        ]
    given = view.inputs.get("input")
    prompt += response_items([given] if isinstance(given, str) else given or [])
    return [*prompt, _merged_answer(response_items(output))]


def _system_text(system: Any) -> str:
    """An Anthropic `system`: a string, or text blocks (split for `cache_control`) read as lines."""
    if isinstance(system, list):
        return "\n".join(content_parts(block)[0] for block in system if isinstance(block, dict))
    return content_parts(system)[0]


def _anthropic_messages(view: RunView) -> list[Message]:
    """`wrap_anthropic`: the system prompt rides first in `messages`; content is blocks."""
    outputs = view.outputs
    if outputs.get("role") != "assistant" or "stop_reason" not in outputs:
        raise NotThisShape("not an Anthropic message")
    if "messages" not in view.inputs:
        raise NotThisShape("Anthropic run without messages")
    raw = list(view.inputs["messages"])
    system = view.inputs.get("system")
    if system is None and raw and isinstance(raw[0], dict) and raw[0].get("role") == "system":
        system = raw.pop(0).get("content")
    prompt = [Message(role="system", content=_system_text(system))] if system else []
    prompt += message_list(raw) if raw else []
    answer = message_from_any({"role": "assistant", "content": outputs.get("content")})
    calls = tool_calls(outputs.get("tool_calls"))
    if calls:
        answer.tool_calls = calls
    return [*prompt, answer]


def _langchain_chat(view: RunView) -> list[Message]:
    generations = view.outputs.get("generations")
    if "messages" not in view.inputs or not isinstance(generations, list) or not generations:
        raise NotThisShape("not a LangChain chat model run")
    first = generations[0][0] if isinstance(generations[0], list) else generations[0]
    if isinstance(first, dict) and first.get("message"):
        answer = message_from_any(first["message"])
    elif isinstance(first, dict):
        answer = Message(role="assistant", content=clean_text(first.get("text")))
    else:
        raise NotThisShape("generation is not an object")
    return [*message_list(view.inputs["messages"]), answer]


def _completion(view: RunView) -> list[Message]:
    prompts, generations = view.inputs.get("prompts"), view.outputs.get("generations")
    if not isinstance(prompts, list) or not prompts or not isinstance(generations, list):
        raise NotThisShape("not a completion run")
    first = generations[0][0] if generations and isinstance(generations[0], list) else None
    if not isinstance(first, dict):
        raise NotThisShape("completion run without generations")
    return [
        Message(role="user", content=clean_text(prompts[0])),
        Message(role="assistant", content=clean_text(first.get("text"))),
    ]


def _system_prompt(view: RunView) -> list[Message]:
    """The system message an agent's model saw: agents add it per call, not to their state."""
    for child in reversed(view.children):
        raw = (child.get("inputs") or {}).get("messages")
        if child.get("run_type") != "llm" or raw is None:
            continue
        try:
            messages = message_list(raw)
        except (NotThisShape, ValidationError):
            continue
        return [m for m in messages[:1] if m.role == "system"]
    return []


def _agent(view: RunView) -> list[Message]:
    """Agents and graphs whose state holds `messages`: the whole conversation, in order."""
    messages = message_list(view.outputs.get("messages"))
    if not any(m.role == "user" for m in messages):
        raise NotThisShape("agent state without a user message")
    if messages[0].role != "system":
        messages = [*_system_prompt(view), *messages]
    return messages


def _answer_from_value(value: Any, structured: bool) -> Message:
    if isinstance(value, dict) and ("lc" in value or "role" in value or "type" in value):
        message = message_from_any(value)
        if message.role != "assistant":
            raise NotThisShape("output message is not from the assistant")
        return message
    if isinstance(value, (str, int, float)):
        return Message(role="assistant", content=clean_text(str(value)))
    if structured and isinstance(value, (dict, list)) and value:
        # Structured output under a known key (`result`, `answer`...) of a function returning
        # data is a valid answer to learn: keep it as JSON. Under an unknown key it is not.
        return Message(role="assistant", content=clean_text(json.dumps(value, ensure_ascii=False)))
    raise NotThisShape("output is not text")


def _question(value: Any) -> list[Message]:
    if isinstance(value, list):
        return message_list(value)
    if isinstance(value, (str, int, float)):
        return [Message(role="user", content=clean_text(str(value)))]
    raise NotThisShape("input is not text")


def _graph_state(view: RunView) -> list[Message]:
    """A `StateGraph` root with free-form state: input and answer by the keys' rules."""
    if not view.from_graph:
        raise NotThisShape("not a LangGraph graph")
    question = state_input(view.inputs)
    answer, structured = state_output(view.inputs, view.outputs)
    if question is None or answer is None:
        raise NotThisShape("no recognisable input/output state keys")
    return [*_question(question), _answer_from_value(answer, structured)]


def _free_form(view: RunView) -> list[Message]:
    """Chains and @traceable functions: {question: ...} → {answer: ...} and friends."""
    inputs, outputs = view.inputs, view.outputs
    question = pick({k: v for k, v in inputs.items() if k != "chat_history"}, INPUT_KEYS)
    answer = pick(outputs, OUTPUT_KEYS)
    if question is None or answer is None:
        raise NotThisShape("no recognisable question/answer keys")
    prompt = _question(question)
    history = inputs.get("chat_history")
    if isinstance(history, list) and history:
        prompt = message_list(history) + prompt
    return [*prompt, _answer_from_value(answer, any(k in outputs for k in OUTPUT_KEYS))]


Recogniser = Callable[[RunView], list[Message]]
_RECOGNISERS: tuple[tuple[str, Recogniser], ...] = (
    ("openai_chat", _openai_chat),
    ("openai_responses", _openai_responses),
    ("anthropic_messages", _anthropic_messages),
    ("langchain_chat", _langchain_chat),
    ("completion", _completion),
    ("agent", _agent),
    ("graph_state", _graph_state),
    ("free_form", _free_form),
)
#: Shapes that are one model call: the tools are the ones that call was offered.
_MODEL_CALLS = frozenset(
    {"openai_chat", "openai_responses", "anthropic_messages", "langchain_chat"}
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


def _recognise(view: RunView) -> tuple[str, list[Message]] | None:
    for shape, recognise in _RECOGNISERS:
        try:
            return shape, recognise(view)
        except (NotThisShape, ValidationError, KeyError, IndexError, TypeError, AttributeError):
            continue
    return None


def _tools(
    run: Mapping[str, Any], view: RunView, shape: str
) -> tuple[list[dict[str, Any]], bool | None]:
    if shape in _MODEL_CALLS:
        return run_tools(run)
    if shape == "agent":
        return model_calls_tools(view.children)
    return [], None


def _too_long(messages: list[Message], max_chars: int) -> str | None:
    if any(len(m.content) > max_chars for m in messages):
        return f"text longer than {max_chars} characters"
    image_chars = sum(len(i.url) for m in messages for i in m.images or [])
    if image_chars > MAX_IMAGE_CHARS:
        return f"images larger than {MAX_IMAGE_CHARS} characters"
    return None


def convert_run(
    run: dict[str, Any],
    feedback: list[dict[str, Any]] | None = None,
    project: str | None = None,
    max_chars: int = MAX_TEXT_CHARS,
) -> Conversation | Skip:
    """The conversation of one run (with its `child_runs`), or why it has none."""
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
    view = RunView.of(run)
    step = _step_skip(view)
    if step is not None:
        return Skip(run_id, step)
    recognised = _recognise(view)
    if recognised is None:
        # A root of no known shape is worth a look; a nested step of one is just a step.
        return Skip(run_id, INNER_STEP if run.get("parent_run_id") else "unknown run shape")
    shape, messages = recognised
    if messages[-1].role != "assistant" or not (messages[-1].content or messages[-1].tool_calls):
        return Skip(run_id, "empty answer")
    too_long = _too_long(messages, max_chars)
    if too_long is not None:
        return Skip(run_id, too_long)
    docs = context_docs(list(view.children))
    tools, parallel = _tools(run, view, shape)
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
        tools=tools,
        parallel_tool_calls=parallel,
    )
