"""Check fine-tuning files against OpenAI's published data rules before anything is uploaded.

The rules follow OpenAI's fine-tuning guide and its data-preparation cookbook: every line a JSON
object; `messages` a non-empty list; known roles and keys only; non-empty content (an assistant
turn may carry tool calls instead); `weight` only on assistant turns and only 0 or 1; at least
one assistant turn to learn from; each example within the model's token limit; at least
`MIN_EXAMPLES` examples. Preference (DPO) lines need `input.messages` and exactly one assistant
message in each of `preferred_output` and `non_preferred_output`, and the two must differ.
Tools (beside `messages`, or in `input` for DPO): a list of function definitions with names;
every tool call names a declared tool; `parallel_tool_calls` a boolean, and when false no turn
calls two tools at once.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracetune.sync.export.writer import FileKind
from tracetune.sync.token_count import TokenCounter

MIN_EXAMPLES = 10
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
)

#: Tokens per training example, from OpenAI's model pages; unknown models get the default.
EXAMPLE_TOKEN_LIMITS: dict[str, int] = {
    "gpt-4.1": 65_536,
    "gpt-4o": 65_536,
    "gpt-4o-mini": 65_536,
    "gpt-3.5-turbo-0613": 4_096,
    "gpt-3.5-turbo": 16_385,
    "babbage-002": 16_384,
    "davinci-002": 16_384,
}
DEFAULT_TOKEN_LIMIT = 65_536


def token_limit_for(model: str | None) -> int:
    """The per-example limit of the longest known model name that prefixes `model`."""
    if not model:
        return DEFAULT_TOKEN_LIMIT
    matches = [name for name in EXAMPLE_TOKEN_LIMITS if model.startswith(name)]
    return EXAMPLE_TOKEN_LIMITS[max(matches, key=len)] if matches else DEFAULT_TOKEN_LIMIT


@dataclass(frozen=True)
class Issue:
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.code}: {self.message}"


@dataclass
class ValidationReport:
    """Outcome of checking one file: errors block an upload, token statistics go to manifests."""

    name: str
    kind: FileKind
    examples: int = 0
    errors: list[Issue] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def token_stats(self) -> dict[str, float | int]:
        if not self.tokens:
            return {"examples": 0, "total": 0}
        ordered = sorted(self.tokens)
        return {
            "examples": len(ordered),
            "total": sum(ordered),
            "min": ordered[0],
            "max": ordered[-1],
            "mean": round(statistics.fmean(ordered), 1),
            "p50": ordered[len(ordered) // 2],
            "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        }

    def summary(self, limit: int = 5) -> str:
        """One line naming the first problems, for job failure reasons and the CLI."""
        if self.ok:
            return f"{self.name}: {self.examples} examples, valid"
        shown = "; ".join(str(issue) for issue in self.errors[:limit])
        more = f" (+{len(self.errors) - limit} more)" if len(self.errors) > limit else ""
        return f"{self.name}: {len(self.errors)} problems: {shown}{more}"


def _has_content(content: Any) -> bool:
    """Text that is not blank, or a non-empty list of content parts."""
    if isinstance(content, str):
        return bool(content.strip())
    return isinstance(content, list) and bool(content)


def _message_issues(message: Any, line: int, where: str) -> list[Issue]:
    if not isinstance(message, Mapping):
        return [Issue(line, "message_not_object", f"{where} is not an object")]
    issues = []
    unknown = sorted(set(message) - MESSAGE_KEYS)
    if unknown:
        issues.append(Issue(line, "message_unrecognized_key", f"{where} has keys {unknown}"))
    role = message.get("role")
    if role is None:
        issues.append(Issue(line, "message_missing_key", f"{where} has no role"))
    elif role not in ROLES:
        issues.append(Issue(line, "unrecognized_role", f"{where} has role {role!r}"))
    content = message.get("content")
    calls = message.get("tool_calls") or message.get("function_call")
    if "content" not in message and not calls:
        issues.append(Issue(line, "message_missing_key", f"{where} has no content"))
    elif calls and role != "assistant":
        issues.append(Issue(line, "tool_calls_not_assistant", f"{where}: only assistants call"))
    elif not calls and not _has_content(content):
        issues.append(Issue(line, "missing_content", f"{where} has empty content"))
    if "weight" in message:
        if role != "assistant":
            issues.append(Issue(line, "invalid_weight", f"{where}: weight on a {role} message"))
        elif message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
            issues.append(Issue(line, "invalid_weight", f"{where}: weight must be 0 or 1"))
    return issues


def _messages_issues(messages: Any, line: int, where: str) -> list[Issue]:
    if not isinstance(messages, list) or not messages:
        return [Issue(line, "missing_messages_list", f"{where} must be a non-empty list")]
    issues = []
    for index, message in enumerate(messages):
        issues.extend(_message_issues(message, line, f"{where}[{index}]"))
    return issues


def _declared_tools(tools: Any, line: int, where: str) -> tuple[set[str], list[Issue]]:
    """The function names a line declares, and what is wrong with its `tools`."""
    if tools is None:
        return set(), []
    if not isinstance(tools, list) or not tools:
        return set(), [Issue(line, "invalid_tools", f"{where} must be a non-empty list")]
    names: set[str] = set()
    issues = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(tool, Mapping) or tool.get("type") != "function" or not name:
            issues.append(
                Issue(line, "invalid_tools", f"{where}[{index}] is not a named function tool")
            )
        else:
            names.add(str(name))
    return names, issues


def _tool_call_issues(
    holder: Mapping[str, Any], messages: list[tuple[str, Any]], line: int, where: str
) -> list[Issue]:
    """Tools declared well, every call naming one, and parallel calls only where allowed."""
    declared, issues = _declared_tools(holder.get("tools"), line, f"{where}tools")
    parallel = holder.get("parallel_tool_calls")
    if "parallel_tool_calls" in holder and not isinstance(parallel, bool):
        issues.append(
            Issue(line, "invalid_parallel_tool_calls", f"{where}parallel_tool_calls not a boolean")
        )
    for place, message in messages:
        calls = message.get("tool_calls") if isinstance(message, Mapping) else None
        if not isinstance(calls, list):
            continue
        if parallel is False and len(calls) > 1:
            issues.append(
                Issue(line, "parallel_tool_calls", f"{place} calls {len(calls)} tools at once")
            )
        for call in calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            name = function.get("name") if isinstance(function, Mapping) else None
            if name not in declared:
                said = "no tools are declared" if not declared else "tools do not declare it"
                issues.append(Issue(line, "undeclared_tool", f"{place} calls {name!r}: {said}"))
    return issues


def _placed(messages: Any, where: str) -> list[tuple[str, Any]]:
    return (
        [(f"{where}[{i}]", m) for i, m in enumerate(messages)] if isinstance(messages, list) else []
    )


def _sft_issues(record: Mapping[str, Any], line: int) -> list[Issue]:
    messages = record.get("messages")
    issues = _messages_issues(messages, line, "messages")
    if issues or not isinstance(messages, list):
        return issues
    issues += _tool_call_issues(record, _placed(messages, "messages"), line, "")
    learnable = [m for m in messages if m.get("role") == "assistant" and m.get("weight", 1) == 1]
    if not learnable:
        issues.append(
            Issue(line, "example_missing_assistant_message", "no assistant message to learn from")
        )
    return issues


def _output_issues(output: Any, line: int, key: str) -> list[Issue]:
    if not isinstance(output, list) or len(output) != 1:
        return [Issue(line, "invalid_output", f"{key} must hold exactly one message")]
    issues = _message_issues(output[0], line, f"{key}[0]")
    if not issues and output[0].get("role") != "assistant":
        issues.append(Issue(line, "invalid_output", f"{key}[0] must be an assistant message"))
    return issues


def _preference_issues(record: Mapping[str, Any], line: int) -> list[Issue]:
    source = record.get("input")
    if not isinstance(source, Mapping):
        return [Issue(line, "missing_input", "no input object")]
    issues = _messages_issues(source.get("messages"), line, "input.messages")
    issues += _output_issues(record.get("preferred_output"), line, "preferred_output")
    issues += _output_issues(record.get("non_preferred_output"), line, "non_preferred_output")
    if not issues and record["preferred_output"] == record["non_preferred_output"]:
        issues.append(Issue(line, "identical_outputs", "preferred equals non-preferred output"))
    if not issues:
        placed = _placed(source.get("messages"), "input.messages")
        placed += _placed(record["preferred_output"], "preferred_output")
        placed += _placed(record["non_preferred_output"], "non_preferred_output")
        issues += _tool_call_issues(source, placed, line, "input.")
    return issues


def _tool_tokens(holder: Mapping[str, Any], counter: TokenCounter) -> int:
    """Tool definitions count against the limit too: the model reads them as text."""
    tools = holder.get("tools")
    return counter.count(json.dumps(tools, ensure_ascii=False)) if tools else 0


def _tokens(record: Mapping[str, Any], kind: FileKind, counter: TokenCounter) -> int:
    if kind == "sft":
        return counter.count_messages(record["messages"]) + _tool_tokens(record, counter)
    prompt = list(record["input"]["messages"])
    return _tool_tokens(record["input"], counter) + max(
        counter.count_messages(prompt + list(record["preferred_output"])),
        counter.count_messages(prompt + list(record["non_preferred_output"])),
    )


class RecordValidator:
    """Checks one file's JSONL lines as they are written (`add`), then its size (`finish`)."""

    def __init__(
        self,
        name: str,
        kind: FileKind,
        counter: TokenCounter,
        max_tokens: int = DEFAULT_TOKEN_LIMIT,
        min_examples: int = MIN_EXAMPLES,
    ) -> None:
        self.report = ValidationReport(name=name, kind=kind)
        self.counter = counter
        self.max_tokens = max_tokens
        self.min_examples = min_examples
        self._check = _sft_issues if kind == "sft" else _preference_issues
        self._lines = 0

    def add(self, raw: str) -> None:
        """The next line; line numbers in issues start at 1."""
        self._lines += 1
        number, report = self._lines, self.report
        if not raw.strip():
            report.errors.append(Issue(number, "blank_line", "empty line"))
            return
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            report.errors.append(Issue(number, "invalid_json", exc.msg))
            return
        report.examples += 1
        if not isinstance(record, dict):
            report.errors.append(Issue(number, "data_type", "line is not a JSON object"))
            return
        issues = self._check(record, number)
        report.errors.extend(issues)
        if issues:
            return
        tokens = _tokens(record, report.kind, self.counter)
        report.tokens.append(tokens)
        if tokens > self.max_tokens:
            report.errors.append(
                Issue(number, "too_many_tokens", f"{tokens} tokens > limit {self.max_tokens}")
            )

    def finish(self) -> ValidationReport:
        if self.report.examples < self.min_examples:
            self.report.errors.append(
                Issue(
                    0,
                    "too_few_examples",
                    f"{self.report.examples} examples < minimum {self.min_examples}",
                )
            )
        return self.report


def validate_records(
    name: str,
    lines: Iterable[str],
    kind: FileKind,
    counter: TokenCounter,
    max_tokens: int = DEFAULT_TOKEN_LIMIT,
    min_examples: int = MIN_EXAMPLES,
) -> ValidationReport:
    """Check JSONL lines of one file; line numbers in issues start at 1."""
    validator = RecordValidator(name, kind, counter, max_tokens, min_examples)
    for raw in lines:
        validator.add(raw)
    return validator.finish()


def validate_file(
    path: Path,
    kind: FileKind,
    counter: TokenCounter,
    max_tokens: int = DEFAULT_TOKEN_LIMIT,
    min_examples: int = MIN_EXAMPLES,
) -> ValidationReport:
    with path.open(encoding="utf-8") as handle:
        return validate_records(
            path.name, handle, kind, counter, max_tokens=max_tokens, min_examples=min_examples
        )
