"""LangSmith's filter query language, `and(eq(run_type, "llm"), gt(latency, 2))`, as run predicates.

`compile_filter` parses a filter string and returns a predicate over a `RunView`: the values of
one stored run that filters read, computed lazily by the store (token totals, feedback pairs,
search text) and cached for the rest of the evaluation.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from standins.langsmith.wire import ApiError, as_datetime


class FilterError(ValueError):
    """A filter string the real API would refuse with 400."""


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Any, ...]


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<punct>[(),\[\]])
    )""",
    re.VERBOSE,
)
_LITERALS = {"true": True, "false": False, "null": None, "none": None}


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    # Up to the trailing whitespace, found once: a filter naming 500 trace ids is 28 KB.
    end = len(text.rstrip())
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterError(f"unexpected character {text[position:].lstrip()[:1]!r}")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "string":
            # A literal without escapes is its text between the quotes.
            value: Any = raw[1:-1] if "\\" not in raw else ast.literal_eval(raw)
        elif kind == "number":
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        else:
            value = raw
        tokens.append((kind, value))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over `call := name "(" [arg ("," arg)*] ")"`."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0

    def _peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self, punct: str | None = None) -> tuple[str, Any]:
        token = self._peek()
        if token is None:
            raise FilterError("unexpected end of filter")
        if punct is not None and token != ("punct", punct):
            raise FilterError(f"expected {punct!r}, found {token[1]!r}")
        self.index += 1
        return token

    def parse(self) -> _Call:
        node = self._arg()
        if self._peek() is not None:
            raise FilterError(f"unexpected {self._peek()[1]!r} after the expression")  # type: ignore[index]
        if not isinstance(node, _Call):
            raise FilterError('a filter must be a function call such as eq(name, "x")')
        return node

    def _arg(self) -> Any:
        kind, value = self._take()
        if kind == "punct" and value == "[":
            items = []
            while self._peek() != ("punct", "]"):
                items.append(self._arg())
                if self._peek() == ("punct", ","):
                    self._take(",")
            self._take("]")
            return items
        if kind == "punct":
            raise FilterError(f"unexpected {value!r}")
        if kind != "name":
            return value
        if self._peek() == ("punct", "("):
            self._take("(")
            args = []
            while self._peek() != ("punct", ")"):
                args.append(self._arg())
                if self._peek() == ("punct", ","):
                    self._take(",")
                elif self._peek() != ("punct", ")"):
                    raise FilterError(f"expected ',' or ')' in {value}(...)")
            self._take(")")
            return _Call(value.lower(), tuple(args))
        if value.lower() in _LITERALS:
            return _LITERALS[value.lower()]
        return _Field(value)


class RunView:
    """Lazily computed values of one run that filters read (tokens, feedback, search text)."""

    __slots__ = ("_cache", "_values", "record")

    def __init__(
        self, values: Callable[[Mapping[str, Any], str], Any], record: Mapping[str, Any]
    ) -> None:
        self._values = values
        self.record = record
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = self._values(self.record, name)
        return self._cache[name]


Predicate = Callable[[RunView], bool]

_STRING_FIELDS = {
    "id", "name", "run_type", "status", "trace_id", "parent_run_id", "session_id",
    "reference_example_id", "thread_id", "dotted_order",
}  # fmt: skip
_TIME_FIELDS = {"start_time", "end_time"}
_NUMBER_FIELDS = {
    "latency", "total_tokens", "prompt_tokens", "completion_tokens", "total_cost",
}  # fmt: skip
_PAIR_FIELDS = {
    "metadata_key": ("metadata", 0), "metadata_value": ("metadata", 1),
    "feedback_key": ("feedback", 0), "feedback_score": ("feedback", 1),
    "input_key": ("input", 0), "input_value": ("input", 1),
    "output_key": ("output", 0), "output_value": ("output", 1),
}  # fmt: skip
_COMPARATORS = {"eq", "neq", "gt", "gte", "lt", "lte"}


def _latency_seconds(value: Any) -> float:
    """`2`, `2.5`, `"2s"` or `"500ms"` as seconds."""
    if isinstance(value, bool):
        raise FilterError("latency needs a number of seconds")
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(ms|s)?\s*", str(value))
    if match is None:
        raise FilterError(f"invalid latency {value!r}")
    number = float(match.group(1))
    return number / 1000 if match.group(2) == "ms" else number


def _compare(op: str, left: Any, right: Any) -> bool:
    """One comparison with the loose typing of the real API (metadata values are strings)."""
    if op == "neq":
        return not _compare("eq", left, right)
    if left is None or right is None:
        return op == "eq" and left is None and right is None
    if isinstance(right, bool):
        left = left if isinstance(left, bool) else str(left).lower() in ("true", "1")
    elif isinstance(right, int | float):
        try:
            left = float(left)
        except (TypeError, ValueError):
            return False
        right = float(right)
    elif not isinstance(right, datetime):
        left = left if isinstance(left, str) else json.dumps(left, ensure_ascii=False)
        right = str(right)
    try:
        if op == "eq":
            return bool(left == right)
        if op == "gt":
            return bool(left > right)
        if op == "gte":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        return bool(left <= right)
    except TypeError:
        return False


def _coerce_value(field: str, value: Any) -> Any:
    if field in _TIME_FIELDS:
        if not isinstance(value, str):
            raise FilterError(f"{field} needs an ISO-8601 string")
        try:
            return as_datetime(value)
        except ApiError as exc:
            raise FilterError(exc.detail) from exc
    if field == "latency":
        return _latency_seconds(value)
    if field in _NUMBER_FIELDS and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise FilterError(f"{field} needs a number")
    if field == "is_root" and not isinstance(value, bool):
        raise FilterError("is_root needs true or false")
    return value


def _field_name(node: Any, where: str) -> str:
    if not isinstance(node, _Field):
        raise FilterError(f"{where} needs a field name as its first argument")
    name = node.name
    known = _STRING_FIELDS | _TIME_FIELDS | _NUMBER_FIELDS | set(_PAIR_FIELDS)
    if name not in known | {"error", "tags", "is_root", "metadata"}:
        raise FilterError(f"unknown field {name!r}")
    return name


def _pair_check(node: _Call) -> tuple[str, int, Callable[[Any], bool]] | None:
    """For a comparison on a key/value family field: (family, 0 key | 1 value, test)."""
    if node.name not in _COMPARATORS | {"in"} or len(node.args) != 2:
        return None
    if not isinstance(node.args[0], _Field) or node.args[0].name not in _PAIR_FIELDS:
        return None
    family, side = _PAIR_FIELDS[node.args[0].name]
    target = node.args[1]
    if node.name == "in":
        if not isinstance(target, list):
            raise FilterError("in() needs a list")
        return family, side, lambda value: any(_compare("eq", value, t) for t in target)
    op = node.name
    return family, side, lambda value: _compare(op, value, target)


def _pairs_predicate(family: str, checks: Sequence[tuple[int, Callable[[Any], bool]]]) -> Predicate:
    """True when ONE entry of the family satisfies every key and every value check."""

    def predicate(view: RunView) -> bool:
        for entry in view.get(f"{family}_pairs"):
            if all(check(entry[side]) for side, check in checks):
                return True
        return False

    return predicate


def compile_filter(text: str) -> Predicate:
    """Parse and compile a filter string; raises `FilterError` on anything unknown."""
    return _compile(_Parser(text).parse())


def filter_fields(text: str) -> set[str]:
    """The fields a filter string names, e.g. to tell whether it has a feedback condition."""
    fields: set[str] = set()
    pending: list[Any] = [_Parser(text).parse()]
    while pending:
        node = pending.pop()
        if isinstance(node, _Field):
            fields.add(node.name)
        elif isinstance(node, _Call):
            pending.extend(node.args)
        elif isinstance(node, list):
            pending.extend(node)
    return fields


def _compile(node: Any) -> Predicate:
    if not isinstance(node, _Call):
        raise FilterError(f"expected a function call, found {node!r}")
    name, args = node.name, node.args
    if name in ("and", "or"):
        if not args:
            raise FilterError(f"{name}() needs at least one argument")
        if name == "or":
            lookup = _string_lookup(args)
            if lookup is not None:
                return lookup
            parts = [_compile(arg) for arg in args]
            return lambda view: any(part(view) for part in parts)
        return _compile_and(args)
    if name == "not":
        if len(args) != 1:
            raise FilterError("not() takes one argument")
        inner = _compile(args[0])
        return lambda view: not inner(view)
    if name == "search":
        if len(args) != 1 or not isinstance(args[0], str):
            raise FilterError('search() takes one string, as in search("timeout")')
        needle = args[0].lower()
        return lambda view: needle in view.get("search_text")
    pair = _pair_check(node)
    if pair is not None:
        family, side, check = pair
        return _pairs_predicate(family, [(side, check)])
    if name == "has":
        return _compile_has(args)
    if name in _COMPARATORS | {"in"}:
        return _compile_comparison(name, args)
    raise FilterError(f"unknown function {name!r}")


def _string_lookup(args: Sequence[Any]) -> Predicate | None:
    """`or(eq(trace_id, "a"), eq(trace_id, "b"), ...)` as one set lookup, when it is that.

    Clients select the runs of a batch of traces this way; hundreds of separate comparisons
    per run would make the stand-in, not the client, the slow part of a large sync.
    """
    fields = set()
    values = set()
    for arg in args:
        if not (
            isinstance(arg, _Call)
            and arg.name == "eq"
            and len(arg.args) == 2
            and isinstance(arg.args[0], _Field)
            and arg.args[0].name in _STRING_FIELDS
            and isinstance(arg.args[1], str)
        ):
            return None
        fields.add(arg.args[0].name)
        values.add(arg.args[1])
    if len(fields) != 1:
        return None
    (field,) = fields
    return lambda view: view.get(field) in values


def _compile_and(args: Sequence[Any]) -> Predicate:
    """`and()` pairs key and value comparisons of one family: metadata, feedback, input..."""
    families: dict[str, list[tuple[int, Callable[[Any], bool]]]] = defaultdict(list)
    parts: list[Predicate] = []
    for arg in args:
        pair = _pair_check(arg) if isinstance(arg, _Call) else None
        if pair is None:
            parts.append(_compile(arg))
        else:
            families[pair[0]].append((pair[1], pair[2]))
    parts.extend(_pairs_predicate(family, checks) for family, checks in families.items())
    return lambda view: all(part(view) for part in parts)


def _compile_has(args: Sequence[Any]) -> Predicate:
    if len(args) != 2:
        raise FilterError("has() takes a field and a value")
    field = _field_name(args[0], "has()")
    value = args[1]
    if field == "tags":
        return lambda view: value in view.get("tags")
    if field == "metadata":
        try:
            wanted = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            wanted = value
        if isinstance(wanted, dict):
            return lambda view: all(
                _compare("eq", view.get("metadata").get(k), v) for k, v in wanted.items()
            )
        return lambda view: wanted in view.get("metadata")
    raise FilterError(f"has() works on tags and metadata, not {field!r}")


def _compile_comparison(op: str, args: Sequence[Any]) -> Predicate:
    if len(args) != 2:
        raise FilterError(f"{op}() takes a field and a value")
    field = _field_name(args[0], f"{op}()")
    if field == "metadata":
        raise FilterError("compare metadata with has(metadata, ...) or metadata_key/metadata_value")
    if op == "in":
        if not isinstance(args[1], list):
            raise FilterError("in() needs a list")
        values = [_coerce_value(field, v) for v in args[1]]
        if field == "tags":
            return lambda view: any(v in view.get("tags") for v in values)
        return lambda view: any(_compare("eq", view.get(field), v) for v in values)
    value = _coerce_value(field, args[1])
    if field == "tags":
        if op not in ("eq", "neq"):
            raise FilterError("tags compare with eq, neq or has")
        return lambda view: (value in view.get("tags")) == (op == "eq")
    if field == "error" and isinstance(value, bool):
        return lambda view: _compare(op, view.get("error") is not None, value)
    return lambda view: _compare(op, view.get(field), value)
