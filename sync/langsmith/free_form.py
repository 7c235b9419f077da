"""Which keys of a free-form run hold the question and the answer: chains and graph state.

Chains and `@traceable` functions name their input and output (`{"question": ...}` →
`{"answer": ...}`); a LangGraph `StateGraph` root returns its whole state, input keys echoed
back, under names the application chose (`claim_text` → `category`, `decision`). The rules:

* chains: the first of `INPUT_KEYS` / `OUTPUT_KEYS` that is present, else the only key;
* graph state, input: the same keys, else a key one of whose words is an input word
  (`claim_text`, `user_question`), else the only text, else the longest text;
* graph state, output: only keys the graph wrote (a value equal to the input's is an echo),
  then the chain keys, else a key one of whose words is an answer word (`decision`,
  `final_reply`), else the only text, else the last text in state order (LangGraph keeps
  the declaration order, and states declare results after inputs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

INPUT_KEYS = ("question", "input", "query", "prompt", "user_input", "message", "text", "q")
OUTPUT_KEYS = ("answer", "output", "result", "response", "text", "content", "generation")
_INPUT_WORDS = frozenset(
    {"question", "query", "input", "prompt", "request", "message", "text", "ask", "instruction"}
)
_OUTPUT_WORDS = frozenset(
    {
        "answer", "output", "result", "response", "reply", "decision", "summary", "verdict",
        "resolution", "recommendation", "final", "draft", "completion", "generation",
    }
)  # fmt: skip
_WORD = re.compile(r"[a-z]+")


def pick(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The chain rule: the first known key with a value, else the only value."""
    for key in keys:
        if key in mapping and mapping[key] not in (None, ""):
            return mapping[key]
    if len(mapping) == 1:
        return next(iter(mapping.values()))
    return None


def _words(key: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1_\2", key).lower()
    return set(_WORD.findall(spaced))


def _texts(mapping: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in mapping.items() if isinstance(v, str) and v.strip()}


def _by_words(mapping: Mapping[str, Any], words: frozenset[str]) -> str | None:
    for key, value in mapping.items():
        if _words(key) & words and value not in (None, ""):
            return key
    return None


def state_input(inputs: Mapping[str, Any]) -> Any:
    """The graph's input text (or messages), by the rules above."""
    chosen = pick(inputs, INPUT_KEYS)
    if chosen is not None:
        return chosen
    texts = _texts(inputs)
    key = _by_words(texts, _INPUT_WORDS)
    if key is not None:
        return texts[key]
    return max(texts.values(), key=len) if texts else None


def written_state(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The state keys the graph wrote: an output equal to the input under its key is an echo."""
    return {k: v for k, v in outputs.items() if k not in inputs or inputs[k] != v}


def state_output(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> tuple[Any, bool]:
    """The graph's answer, and whether it came from a known answer key (structured allowed)."""
    written = {k: v for k, v in written_state(inputs, outputs).items() if v not in (None, "")}
    for key in OUTPUT_KEYS:
        if key in written:
            return written[key], True
    named = _by_words(written, _OUTPUT_WORDS)
    if named is not None:
        return written[named], True
    texts = _texts(written)
    if texts:
        return list(texts.values())[-1], False
    return None, False
