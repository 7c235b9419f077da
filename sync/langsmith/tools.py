"""The tools a model was offered, read from its run, in OpenAI's chat shape whatever the provider.

Where they are: `inputs.tools` for wrapped SDK calls (`wrap_openai` chat completions and
Responses, `wrap_anthropic`), `extra.invocation_params.tools` for LangChain chat models
(`bind_tools`, agents), and for an agent's root run the same in its llm child runs. OpenAI
chat tools are `{"type": "function", "function": {...}}`, Responses tools are flat
(`{"type": "function", "name", "parameters"}`), Anthropic tools carry `input_schema`; all
become the first form. Built-in tools (web search, code interpreter...) are not functions a
fine-tuned model can call, so they are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_FUNCTION_KEYS = ("name", "description", "parameters", "strict")


def _function(definition: Mapping[str, Any]) -> dict[str, Any] | None:
    """One tool definition in OpenAI's chat shape, or None for a built-in tool."""
    nested = definition.get("function")
    if isinstance(nested, Mapping) and nested.get("name"):
        body = dict(nested)
    elif definition.get("type") in (None, "function", "custom") and definition.get("name"):
        body = dict(definition)
        if "input_schema" in body and "parameters" not in body:
            body["parameters"] = body["input_schema"]
    else:
        return None
    function = {key: body[key] for key in _FUNCTION_KEYS if body.get(key) is not None}
    return {"type": "function", "function": function}


def normalise_tools(raw: Any) -> list[dict[str, Any]]:
    """Function tools of one request, in order, each name once."""
    if not isinstance(raw, list):
        return []
    tools: dict[str, dict[str, Any]] = {}
    for definition in raw:
        if isinstance(definition, Mapping):
            tool = _function(definition)
            if tool is not None:
                tools.setdefault(tool["function"]["name"], tool)
    return list(tools.values())


def _invocation_params(run: Mapping[str, Any]) -> Mapping[str, Any]:
    extra = run.get("extra") or {}
    params = extra.get("invocation_params") if isinstance(extra, Mapping) else None
    return params if isinstance(params, Mapping) else {}


def _metadata_params(run: Mapping[str, Any]) -> Mapping[str, Any]:
    extra = run.get("extra") or {}
    metadata = extra.get("metadata") if isinstance(extra, Mapping) else None
    params = metadata.get("ls_invocation_params") if isinstance(metadata, Mapping) else None
    return params if isinstance(params, Mapping) else {}


def _parallel(run: Mapping[str, Any]) -> bool | None:
    """Whether the request allowed several tool calls in one turn, when it says so."""
    inputs = run.get("inputs") or {}
    outputs = run.get("outputs") or {}
    for source in (inputs, _invocation_params(run), _metadata_params(run)):
        if isinstance(source, Mapping) and isinstance(source.get("parallel_tool_calls"), bool):
            return bool(source["parallel_tool_calls"])
        choice = source.get("tool_choice") if isinstance(source, Mapping) else None
        if isinstance(choice, Mapping) and "disable_parallel_tool_use" in choice:
            return not bool(choice["disable_parallel_tool_use"])  # Anthropic's switch
    if isinstance(outputs, Mapping) and outputs.get("object") == "response":
        value = outputs.get("parallel_tool_calls")  # the Responses API echoes what it applied
        return value if isinstance(value, bool) else None
    return None


def run_tools(run: Mapping[str, Any]) -> tuple[list[dict[str, Any]], bool | None]:
    """The tools one model call was offered and its `parallel_tool_calls`."""
    inputs = run.get("inputs") or {}
    raw = inputs.get("tools") if isinstance(inputs, Mapping) else None
    tools = normalise_tools(raw) or normalise_tools(_invocation_params(run).get("tools"))
    return tools, _parallel(run) if tools else None


def model_calls_tools(
    children: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], bool | None]:
    """The tools an agent's model calls (its llm child runs) were offered, each name once.

    `parallel_tool_calls` is the last call's that says it: an agent binds its tools once.
    """
    tools: dict[str, dict[str, Any]] = {}
    parallel: bool | None = None
    for child in children:
        if child.get("run_type") != "llm":
            continue
        found, allowed = run_tools(child)
        for tool in found:
            tools.setdefault(tool["function"]["name"], tool)
        parallel = allowed if allowed is not None else parallel
    return list(tools.values()), parallel
