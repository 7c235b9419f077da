"""A local stand-in of the LangSmith HTTP API, for the real, unmodified `langsmith` SDK.

Point `LANGSMITH_ENDPOINT` (or `Client(api_url=...)`) at `LangSmithStandIn.url` and the SDK
traces into it, reads runs back with `list_runs`, and manages projects, datasets, examples
and feedback. The request and response shapes follow what `langsmith/client.py` sends and
parses (checked against langsmith 0.15):

- ingest: `POST /runs`, `PATCH /runs/{id}`, `POST /runs/batch` and `POST /runs/multipart`
  (`post.<id>`, `post.<id>.inputs`, `patch.<id>.outputs`, `feedback.<id>`..., plain or
  zstd-compressed); `/info` says which of batch or multipart the SDK should use;
- reading: `POST /runs/query` with cursor pagination and LangSmith's filter language
  (`and(eq(run_type, "llm"), gt(latency, 2))`...), `GET /runs/{id}`;
- projects (`/sessions`), datasets, examples (`/examples`, `/examples/bulk` and the
  multipart `/v1/platform/datasets/{id}/examples`), feedback (`/feedback`);
- auth: every route but `/info` needs the `x-api-key` header, else 401 like the real API.

Unlike the real service, ingestion is synchronous: once `Client.flush()` returns, the runs
can be read. Everything lives in one `RunStore`, in memory; `LangSmithStandIn.requests`
records each request's method, path and encoding, so tests can tell which endpoint the SDK
chose.
"""

from __future__ import annotations

import ast
import base64
import bisect
import heapq
import io
import json
import re
import statistics
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from flask import Flask, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.formparser import parse_form_data

from standins import BackgroundServer

#: The tenant every project, dataset and feedback record belongs to.
TENANT_ID = "7c2f8c5e-2a8e-4a63-9b8e-1f0d6f3b5a10"
#: What `/info` reports; the SDK sends feedback through multipart only from 0.8.10 on.
SERVER_VERSION = "0.10.100"
#: The real API's largest `/runs/query` page.
MAX_PAGE = 100

# --------------------------------------------------------------------------------------------
# Errors and JSON


class ApiError(Exception):
    """An HTTP error answered as `{"detail": ...}`, the real API's (FastAPI) error body."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _loads(data: bytes | str) -> Any:
    """orjson for speed; the stdlib for what orjson refuses (lone surrogates from bad bytes)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ApiError(422, f"invalid JSON: {exc}") from exc


def _dumps(value: Any) -> bytes:
    """orjson, falling back to escaped ASCII for strings that are not valid UTF-8."""
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return json.dumps(value, ensure_ascii=True, default=str).encode()


def _json_response(value: Any, status: int = 200) -> Response:
    return Response(_dumps(value), status=status, mimetype="application/json")


# --------------------------------------------------------------------------------------------
# Times and ids


def _as_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from what the SDK sends (ISO strings, naive meaning UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ApiError(422, f"invalid datetime {value!r}") from exc
    else:
        raise ApiError(422, f"invalid datetime {value!r}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _api_time(value: datetime | None) -> str | None:
    """Times as the real API writes them: naive UTC ISO-8601 with microseconds."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(value: Any, what: str = "id") -> str:
    """The canonical string of a UUID; the fast path matters when loading 10,000 runs."""
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError as exc:
        raise ApiError(422, f"{what} is not a UUID: {value!r}") from exc


def _optional_uuid(value: Any, what: str = "id") -> str | None:
    return None if value in (None, "") else _uuid(value, what)


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# The filter query language: `and(eq(run_type, "llm"), gt(latency, 2))`


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
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterError(f"unexpected character {text[position:].lstrip()[:1]!r}")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "string":
            value: Any = ast.literal_eval(raw)
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


class _RunView:
    """Lazily computed values of one run that filters read (tokens, feedback, search text)."""

    __slots__ = ("_cache", "record", "store")

    def __init__(self, store: RunStore, record: dict[str, Any]) -> None:
        self.store = store
        self.record = record
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = self.store._field_value(self.record, name)
        return self._cache[name]


Predicate = Callable[[_RunView], bool]

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
            return _as_datetime(value)
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

    def predicate(view: _RunView) -> bool:
        for entry in view.get(f"{family}_pairs"):
            if all(check(entry[side]) for side, check in checks):
                return True
        return False

    return predicate


def compile_filter(text: str) -> Predicate:
    """Parse and compile a filter string; raises `FilterError` on anything unknown."""
    return _compile(_Parser(text).parse())


def _compile(node: Any) -> Predicate:
    if not isinstance(node, _Call):
        raise FilterError(f"expected a function call, found {node!r}")
    name, args = node.name, node.args
    if name in ("and", "or"):
        if not args:
            raise FilterError(f"{name}() needs at least one argument")
        if name == "or":
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


# --------------------------------------------------------------------------------------------
# Token counts and run-shaped values


_LC_USAGE = ("input_tokens", "output_tokens", "total_tokens")
_OPENAI_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


def _counts(usage: Any, names: tuple[str, str, str]) -> tuple[int, int, int] | None:
    """(prompt, completion, total) from a usage dict, None when it counts nothing."""
    if not isinstance(usage, dict):
        return None
    prompt, completion, total = (
        int(v) if isinstance(v := usage.get(name), (int, float)) else 0 for name in names
    )
    if not (prompt or completion or total):
        return None
    return prompt, completion, total or prompt + completion


def _llm_usage(outputs: Any) -> tuple[int, int, int] | None:
    """Token counts of an LLM run, from where the SDKs put them in its outputs."""
    if not isinstance(outputs, dict):
        return None
    if isinstance(outputs.get("usage_metadata"), dict):  # wrap_openai, LangChain AIMessage
        return _counts(outputs["usage_metadata"], _LC_USAGE)
    llm_output = outputs.get("llm_output")
    if isinstance(llm_output, dict) and isinstance(llm_output.get("token_usage"), dict):
        return _counts(llm_output["token_usage"], _OPENAI_USAGE)
    if isinstance(outputs.get("usage"), dict):  # a raw OpenAI response
        return _counts(outputs["usage"], _OPENAI_USAGE)
    totals = [0, 0, 0]
    for generation in _flatten(outputs.get("generations")):
        message = generation.get("message") if isinstance(generation, dict) else None
        if isinstance(message, dict):
            fields = message.get("kwargs") if isinstance(message.get("kwargs"), dict) else message
            for i, n in enumerate(_counts(fields.get("usage_metadata"), _LC_USAGE) or (0, 0, 0)):
                totals[i] += n
    return _counts(dict(zip(_LC_USAGE, totals, strict=True)), _LC_USAGE)


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    elif value is not None:
        yield value


def _flat_pairs(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`{"a": {"b": 1}}` → `("a.b", 1)`: the keys `input_key` / `output_key` match."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}{key}"
            if isinstance(item, dict):
                yield from _flat_pairs(item, f"{path}.")
            else:
                yield path, item


def _status(record: Mapping[str, Any]) -> str:
    if record["error"] is not None:
        return "error"
    return "pending" if record["end_time"] is None else "success"


def _parent_ids(dotted_order: str) -> list[str]:
    """Ancestors from the dotted order `<time>Z<uuid>.<time>Z<uuid>...`, root first."""
    return [segment.split("Z", 1)[1] for segment in dotted_order.split(".")[:-1] if "Z" in segment]


def _sort_key(record: Mapping[str, Any]) -> tuple[str, str]:
    return (record["start_time"], record["id"])


#: Fields `/runs/query` may return; `select` picks among them.
RUN_FIELDS = (
    "id", "name", "start_time", "run_type", "end_time", "extra", "error", "serialized", "events",
    "inputs", "outputs", "reference_example_id", "parent_run_id", "tags", "session_id",
    "trace_id", "dotted_order", "parent_run_ids", "child_run_ids", "status", "feedback_stats",
    "app_path", "manifest_id", "prompt_tokens", "completion_tokens", "total_tokens",
    "prompt_cost", "completion_cost", "total_cost", "first_token_time", "in_dataset", "s3_urls",
    "thread_id",
)  # fmt: skip
#: Returned whatever `select` says: the SDK's `Run` model cannot be built without them.
_ALWAYS = ("id", "name", "start_time", "run_type", "trace_id", "dotted_order", "session_id")
#: `select` default: what `Client.list_runs` asks for, plus `serialized` which it never reads.
_DEFAULT_SELECT = tuple(f for f in RUN_FIELDS if f not in ("serialized", "child_run_ids"))


# --------------------------------------------------------------------------------------------
# The store


class RunStore:
    """Projects, runs, datasets, examples and feedback, in memory, safe across threads.

    Runs are kept per project in a list sorted by `(start_time, id)`, so a page of
    `/runs/query` resumes from its cursor with a bisect and reads only what it returns.
    Stored records are replaced on every change, never mutated in place (but for a cached
    search text), so a response can be serialized outside the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._projects: dict[str, dict[str, Any]] = {}
        self._project_ids_by_name: dict[str, str] = {}
        self._runs: dict[str, dict[str, Any]] = {}
        self._order: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._traces: dict[str, list[str]] = defaultdict(list)
        self._pending_patches: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        self._datasets: dict[str, dict[str, Any]] = {}
        self._examples: dict[str, dict[str, Any]] = {}
        self._examples_by_dataset: dict[str, list[str]] = defaultdict(list)
        self._feedback: dict[str, dict[str, Any]] = {}
        self._feedback_by_run: dict[str, list[str]] = defaultdict(list)

    # -- projects -----------------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        *,
        project_id: str | None = None,
        description: str | None = None,
        extra: Mapping[str, Any] | None = None,
        reference_dataset_id: str | None = None,
        upsert: bool = False,
    ) -> str:
        """Create a project (a "session") and return its id; 409 if the name is taken."""
        with self._lock:
            existing = self._project_ids_by_name.get(name)
            if existing is not None:
                if not upsert:
                    raise ApiError(409, f"Session with name {name!r} already exists")
                return existing
            new_id = _uuid(project_id) if project_id else str(uuid.uuid4())
            if new_id in self._projects:
                raise ApiError(409, f"Session {new_id} already exists")
            self._projects[new_id] = {
                "id": new_id,
                "name": name,
                "description": description,
                "start_time": _api_time(_now()),
                "end_time": None,
                "extra": dict(extra) if extra else None,
                "tenant_id": TENANT_ID,
                "reference_dataset_id": _optional_uuid(reference_dataset_id, "dataset id"),
            }
            self._project_ids_by_name[name] = new_id
            return new_id

    def _project_for(self, payload: Mapping[str, Any], project: str | None = None) -> str:
        """The project a run goes to: the named one, its `session_id` or `session_name`.

        A name the store does not know yet is created, as the real API does for traces; an
        unknown id (runs loaded from another LangSmith) becomes a project named by the id.
        """
        name = project or payload.get("session_name") or payload.get("project_name")
        if not project and payload.get("session_id"):
            session_id = _uuid(payload["session_id"], "session_id")
            if session_id in self._projects:
                return session_id
            return self.create_project(name or session_id, project_id=session_id, upsert=True)
        name = name or "default"
        return self._project_ids_by_name.get(name) or self.create_project(name)

    def project(self, project_id: str) -> dict[str, Any]:
        """A project as `GET /sessions/{id}` returns it (a `TracerSessionResult`)."""
        with self._lock:
            record = self._projects.get(project_id)
            if record is None:
                raise ApiError(404, "Session not found")
            runs = self._order.get(project_id) or []
            return {
                **record,
                "run_count": len(runs),
                "last_run_start_time": runs[-1][0] if runs else None,
                "feedback_stats": None,
                "session_feedback_stats": None,
                "run_facets": None,
                "latency_p50": None,
                "latency_p99": None,
                "total_tokens": None,
                "prompt_tokens": None,
                "completion_tokens": None,
                "total_cost": None,
                "prompt_cost": None,
                "completion_cost": None,
                "error_rate": None,
            }

    def list_projects(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`GET /sessions` filters: id, name, name_contains, reference_dataset, reference_free."""
        ids = set(params.get("id") or [])
        name = params.get("name")
        contains = (params.get("name_contains") or "").lower()
        dataset = params.get("reference_dataset")
        free = params.get("reference_free")
        with self._lock:
            chosen = [
                self.project(pid)
                for pid, p in self._projects.items()
                if (not ids or pid in ids)
                and (name is None or p["name"] == name)
                and contains in p["name"].lower()
                and (dataset is None or p["reference_dataset_id"] == dataset)
                and (free is None or (p["reference_dataset_id"] is None) == free)
            ]
        return sorted(chosen, key=lambda p: p["start_time"], reverse=True)

    def update_project(self, project_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = self._projects.get(project_id)
            if record is None:
                raise ApiError(404, "Session not found")
            updated = dict(record)
            for key in ("name", "description", "extra"):
                if changes.get(key) is not None:
                    updated[key] = changes[key]
            if changes.get("end_time") is not None:
                updated["end_time"] = _api_time(_as_datetime(changes["end_time"]))
            if updated["name"] != record["name"]:
                if updated["name"] in self._project_ids_by_name:
                    raise ApiError(409, f"Session with name {updated['name']!r} already exists")
                del self._project_ids_by_name[record["name"]]
                self._project_ids_by_name[updated["name"]] = project_id
            self._projects[project_id] = updated
            return self.project(project_id)

    def delete_project(self, project_id: str) -> None:
        """Delete a project with its runs (and their feedback)."""
        with self._lock:
            record = self._projects.pop(project_id, None)
            if record is None:
                raise ApiError(404, "Session not found")
            del self._project_ids_by_name[record["name"]]
            for _, run_id in self._order.pop(project_id, []):
                run = self._runs.pop(run_id)
                trace = self._traces[run["trace_id"]]
                trace.remove(run_id)
                if not trace:
                    del self._traces[run["trace_id"]]
                for feedback_id in self._feedback_by_run.pop(run_id, []):
                    self._feedback.pop(feedback_id, None)

    # -- runs: ingest -------------------------------------------------------------------------

    def add_runs(self, runs: Iterable[Mapping[str, Any]], project: str | None = None) -> list[str]:
        """Load runs directly (as the SDK sends or returns them); returns their ids.

        Fields the API computes (status, feedback_stats, token totals, child runs...) are
        ignored and recomputed. `project` names the project to put them all in; otherwise
        each run's `session_id` / `session_name` decides.
        """
        ids = []
        touched: set[str] = set()
        with self._lock:
            try:
                for payload in runs:
                    record = self._new_record(payload, project)
                    if record["id"] in self._runs:
                        raise ApiError(409, f"run {record['id']} already exists")
                    self._runs[record["id"]] = record
                    self._order[record["session_id"]].append(_sort_key(record))
                    self._traces[record["trace_id"]].append(record["id"])
                    touched.add(record["session_id"])
                    ids.append(record["id"])
            finally:  # appended unsorted for speed: sort even when a run was refused
                for session_id in touched:
                    self._order[session_id].sort()
        return ids

    def load_jsonl(self, path: Path | str, project: str | None = None) -> list[str]:
        """`add_runs` from a JSONL file of runs (a fixture under tests/fixtures/runs)."""
        with Path(path).open("rb") as handle:
            return self.add_runs((_loads(line) for line in handle if line.strip()), project)

    def create_run(self, payload: Mapping[str, Any]) -> str:
        """`POST /runs`: 409 when the id exists, as the real API answers (the SDK ignores it)."""
        with self._lock:
            run_id = _optional_uuid(payload.get("id"), "run id")
            if run_id is not None and run_id in self._runs:
                raise ApiError(409, f"run {run_id} already exists")
            return self._post(payload)

    def ingest(
        self,
        posts: Sequence[Mapping[str, Any]] = (),
        patches: Sequence[Mapping[str, Any]] = (),
        feedback: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """A batch: every post, then every patch, then feedback, like the real ingest queue."""
        with self._lock:
            for payload in posts:
                self._post(payload)
            for payload in patches:
                run_id = _uuid(payload.get("id"), "run id")
                if run_id in self._runs:
                    self._patch(run_id, payload)
                else:
                    self._pending_patches[run_id].append(payload)
            for payload in feedback:
                self.create_feedback(payload, require_run=False)

    def update_run(self, run_id: str, payload: Mapping[str, Any]) -> None:
        """`PATCH /runs/{id}`."""
        with self._lock:
            if run_id not in self._runs:
                raise ApiError(404, "Run not found")
            self._patch(run_id, payload)

    def _post(self, payload: Mapping[str, Any]) -> str:
        run_id = _optional_uuid(payload.get("id"), "run id")
        if run_id is not None and run_id in self._runs:
            self._patch(run_id, payload)
            return run_id
        record = self._new_record(payload)
        self._insert(record)
        for pending in self._pending_patches.pop(record["id"], []):
            self._patch(record["id"], pending)
        return record["id"]

    def _new_record(self, payload: Mapping[str, Any], project: str | None = None) -> dict[str, Any]:
        if not payload.get("name") or not payload.get("run_type"):
            raise ApiError(422, "a run needs a name and a run_type")
        run_id = _optional_uuid(payload.get("id"), "run id") or str(uuid.uuid4())
        start = _as_datetime(payload.get("start_time")) or _now()
        end = _as_datetime(payload.get("end_time"))
        parent_id = _optional_uuid(payload.get("parent_run_id"), "parent_run_id")
        parent = self._runs.get(parent_id) if parent_id else None
        segment = f"{start:%Y%m%dT%H%M%S%fZ}{run_id}"
        trace_id = _optional_uuid(payload.get("trace_id"), "trace_id") or (
            parent["trace_id"] if parent else parent_id or run_id
        )
        dotted = payload.get("dotted_order") or (
            f"{parent['dotted_order']}.{segment}" if parent else segment
        )
        outputs = payload.get("outputs")
        return {
            "id": run_id,
            "name": str(payload["name"]),
            "run_type": str(payload["run_type"]),
            "start_time": _api_time(start),
            "end_time": _api_time(end),
            "inputs": payload.get("inputs") or {},
            "outputs": outputs,
            "error": payload.get("error"),
            "extra": payload.get("extra") or {},
            "tags": list(payload.get("tags") or []),
            "events": payload.get("events") or [],
            "serialized": payload.get("serialized"),
            "reference_example_id": _optional_uuid(payload.get("reference_example_id")),
            "parent_run_id": parent_id,
            "trace_id": trace_id,
            "dotted_order": dotted,
            "session_id": self._project_for(payload, project),
            "_start": start,
            "_end": end,
            "_usage": _llm_usage(outputs) if payload["run_type"] == "llm" else None,
        }

    def _insert(self, record: dict[str, Any]) -> None:
        self._runs[record["id"]] = record
        bisect.insort(self._order[record["session_id"]], _sort_key(record))
        self._traces[record["trace_id"]].append(record["id"])

    def _patch(self, run_id: str, payload: Mapping[str, Any]) -> None:
        """Merge an update: set fields it carries (None means "not sent"), merge `extra`."""
        old = self._runs[run_id]
        new = {k: v for k, v in old.items() if k != "_search"}
        for key in ("name", "run_type", "inputs", "outputs", "error", "events", "serialized"):
            if payload.get(key) is not None:
                new[key] = payload[key]
        if payload.get("tags") is not None:
            new["tags"] = list(payload["tags"])
        if payload.get("reference_example_id") is not None:
            new["reference_example_id"] = _uuid(payload["reference_example_id"])
        if isinstance(payload.get("extra"), dict):
            extra = {**old["extra"], **payload["extra"]}
            if isinstance(old["extra"].get("metadata"), dict):
                extra["metadata"] = {**old["extra"]["metadata"], **(extra.get("metadata") or {})}
            new["extra"] = extra
        if payload.get("end_time") is not None:
            new["_end"] = _as_datetime(payload["end_time"])
            new["end_time"] = _api_time(new["_end"])
        if payload.get("start_time") is not None:
            new["_start"] = _as_datetime(payload["start_time"])
            new["start_time"] = _api_time(new["_start"])
        new["_usage"] = _llm_usage(new["outputs"]) if new["run_type"] == "llm" else None
        self._runs[run_id] = new
        if _sort_key(new) != _sort_key(old):
            order = self._order[old["session_id"]]
            order.pop(bisect.bisect_left(order, _sort_key(old)))
            bisect.insort(order, _sort_key(new))

    # -- runs: read ---------------------------------------------------------------------------

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run with every field, as `GET /runs/{id}` returns it."""
        with self._lock:
            record = self._runs.get(run_id)
            if record is None:
                raise ApiError(404, "Run not found")
            return self._public(record, RUN_FIELDS)

    def runs(self, project: str | None = None) -> list[dict[str, Any]]:
        """Every run (of one project, by name), oldest first, with default fields."""
        with self._lock:
            if project is None:
                keys = sorted(_sort_key(r) for r in self._runs.values())
            else:
                keys = list(self._order.get(self._project_ids_by_name.get(project, ""), []))
            return [self._public(self._runs[run_id], _DEFAULT_SELECT) for _, run_id in keys]

    def query_runs(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`POST /runs/query`: one page and the cursor of the next."""
        page_size = body.get("limit") or MAX_PAGE
        if not isinstance(page_size, int) or page_size < 1:
            raise ApiError(422, "limit must be a positive integer")
        page_size = min(page_size, MAX_PAGE)
        order = body.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise ApiError(422, "order must be 'asc' or 'desc'")
        select = self._select(body.get("select"))
        if body.get("query"):
            raise ApiError(400, "natural-language queries are not supported by this server")
        after = _decode_cursor(body["cursor"]) if body.get("cursor") else None
        with self._lock:
            keys = self._candidate_keys(body, after, descending=order == "desc")
            predicate = self._predicate(body)
            page: list[dict[str, Any]] = []
            last: tuple[str, str] | None = None
            for key in keys:
                record = self._runs[key[1]]
                if predicate(record):
                    page.append(self._public(record, select))
                    last = key
                    if len(page) == page_size:
                        break
        next_cursor = _encode_cursor(last) if len(page) == page_size and last else None
        return {"runs": page, "cursors": {"next": next_cursor, "prev": None}}

    @staticmethod
    def _select(select: Any) -> tuple[str, ...]:
        if not select:
            return _DEFAULT_SELECT
        unknown = [field for field in select if field not in RUN_FIELDS]
        if unknown:
            raise ApiError(422, f"unknown select fields: {', '.join(map(str, unknown))}")
        return tuple(dict.fromkeys((*_ALWAYS, *select)))

    def _candidate_keys(
        self, body: Mapping[str, Any], after: tuple[str, str] | None, descending: bool
    ) -> Iterator[tuple[str, str]]:
        """Sort keys in page order, strictly after the cursor, from the narrowest index."""
        if body.get("id") is not None or body.get("trace"):
            if body.get("id") is not None:
                ids = [_uuid(i, "run id") for i in body["id"]]
            else:
                ids = list(self._traces.get(_uuid(body["trace"], "trace id"), []))
            keys = sorted(_sort_key(self._runs[i]) for i in ids if i in self._runs)
            return _from_cursor(keys, after, descending)
        if body.get("session"):
            sessions = [_uuid(s, "session id") for s in body["session"]]
        elif body.get("parent_run") or body.get("reference_example"):
            sessions = list(self._order)
        else:
            raise ApiError(
                400,
                "At least one of 'session', 'id', 'parent_run', 'trace' or "
                "'reference_example' must be specified",
            )
        streams = [_from_cursor(self._order.get(s, []), after, descending) for s in sessions]
        return streams[0] if len(streams) == 1 else heapq.merge(*streams, reverse=descending)

    def _predicate(self, body: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
        """The body's arguments as one test; `id` ignores the others, as documented."""
        if body.get("id") is not None:
            return lambda record: True
        tests: list[Callable[[dict[str, Any]], bool]] = []
        if body.get("run_type"):
            tests.append(lambda r: r["run_type"] == body["run_type"])
        if body.get("is_root") is not None:
            tests.append(lambda r: (r["parent_run_id"] is None) == bool(body["is_root"]))
        if body.get("error") is not None:
            tests.append(lambda r: (r["error"] is not None) == bool(body["error"]))
        if body.get("start_time"):
            since = _as_datetime(body["start_time"])
            tests.append(lambda r: r["_start"] >= since)
        if body.get("end_time"):
            until = _as_datetime(body["end_time"])
            tests.append(lambda r: r["_start"] <= until)
        if body.get("parent_run"):
            parent = _uuid(body["parent_run"], "parent_run")
            tests.append(lambda r: r["parent_run_id"] == parent)
        if body.get("reference_example"):
            examples = {_uuid(e, "reference_example") for e in body["reference_example"]}
            tests.append(lambda r: r["reference_example_id"] in examples)
        try:
            compiled = {
                key: compile_filter(body[key])
                for key in ("filter", "trace_filter", "tree_filter")
                if body.get(key)
            }
        except FilterError as exc:
            raise ApiError(400, f"Invalid filter: {exc}") from exc
        if "filter" in compiled:
            tests.append(lambda r: compiled["filter"](_RunView(self, r)))
        if "trace_filter" in compiled:
            tests.append(
                lambda r: (
                    r["trace_id"] in self._runs
                    and compiled["trace_filter"](_RunView(self, self._runs[r["trace_id"]]))
                )
            )
        if "tree_filter" in compiled:
            tests.append(
                lambda r: any(
                    compiled["tree_filter"](_RunView(self, self._runs[i]))
                    for i in self._traces[r["trace_id"]]
                )
            )
        return lambda record: all(test(record) for test in tests)

    def _usage_totals(self, record: Mapping[str, Any]) -> tuple[int, int, int]:
        """Tokens of the run and its descendants, as the real API sums them up the tree."""
        trace = self._traces.get(record["trace_id"], [])
        prefix = record["dotted_order"] + "."
        totals = [0, 0, 0]
        for run_id in trace:
            run = self._runs[run_id]
            if run["_usage"] and (run_id == record["id"] or run["dotted_order"].startswith(prefix)):
                for i, n in enumerate(run["_usage"]):
                    totals[i] += n
        return totals[0], totals[1], totals[2]

    def _field_value(self, record: Mapping[str, Any], name: str) -> Any:
        """What a filter field means for one run."""
        if name in ("start_time", "end_time"):
            return record["_start"] if name == "start_time" else record["_end"]
        if name == "latency":
            end = record["_end"]
            return None if end is None else (end - record["_start"]).total_seconds()
        if name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            totals = self._usage_totals(record)
            return totals[("prompt_tokens", "completion_tokens", "total_tokens").index(name)]
        if name == "status":
            return _status(record)
        if name == "is_root":
            return record["parent_run_id"] is None
        if name == "metadata":
            metadata = record["extra"].get("metadata")
            return metadata if isinstance(metadata, dict) else {}
        if name == "thread_id":
            metadata = self._field_value(record, "metadata")
            for key in ("thread_id", "session_id", "conversation_id"):
                if metadata.get(key) is not None:
                    return str(metadata[key])
            return None
        if name == "metadata_pairs":
            return list(self._field_value(record, "metadata").items())
        if name == "feedback_pairs":
            return [
                (self._feedback[f]["key"], self._feedback[f]["score"])
                for f in self._feedback_by_run.get(record["id"], [])
            ]
        if name in ("input_pairs", "output_pairs"):
            return list(_flat_pairs(record["inputs" if name == "input_pairs" else "outputs"]))
        if name == "search_text":
            if "_search" not in record:
                texts = (record["name"], record["inputs"], record["outputs"], record["error"])
                record["_search"] = json.dumps(texts, ensure_ascii=False, default=str).lower()  # type: ignore[index]
            return record["_search"]
        if name == "total_cost":
            return None
        return record.get(name)

    def _public(self, record: Mapping[str, Any], select: Sequence[str]) -> dict[str, Any]:
        """The API shape of a stored run, with the selected fields only."""
        out: dict[str, Any] = {}
        for name in select:
            if name in record and not name.startswith("_"):
                out[name] = record[name]
            elif name == "status":
                out[name] = _status(record)
            elif name == "feedback_stats":
                out[name] = self._feedback_stats(record["id"])
            elif name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                out[name] = self._field_value(record, name)
            elif name == "parent_run_ids":
                out[name] = _parent_ids(record["dotted_order"])
            elif name == "child_run_ids":
                out[name] = [
                    i for i in self._traces[record["trace_id"]]
                    if self._runs[i]["parent_run_id"] == record["id"]
                ]  # fmt: skip
            elif name == "app_path":
                out[name] = (
                    f"/o/{TENANT_ID}/projects/p/{record['session_id']}/r/{record['id']}"
                    f"?trace_id={record['trace_id']}&start_time={record['start_time']}"
                )
            elif name == "s3_urls":
                out[name] = {}
            elif name == "in_dataset":
                out[name] = False
            elif name == "thread_id":
                out[name] = self._field_value(record, "thread_id")
            else:
                out[name] = None
        return out

    # -- feedback -----------------------------------------------------------------------------

    def create_feedback(
        self, payload: Mapping[str, Any], *, require_run: bool = True
    ) -> dict[str, Any]:
        """Store feedback; `POST /feedback` answers 404 for a run it does not know yet."""
        if not payload.get("key"):
            raise ApiError(422, "feedback needs a key")
        score = payload.get("score")
        if score is not None and not isinstance(score, int | float):
            raise ApiError(422, f"feedback score must be a number or a boolean, not {score!r}")
        with self._lock:
            run_id = _optional_uuid(payload.get("run_id"), "run_id")
            run = self._runs.get(run_id) if run_id else None
            if run_id and run is None and require_run:
                raise ApiError(404, f"Run {run_id} not found")
            now = _api_time(_now())
            source = payload.get("feedback_source") or {"type": "api", "metadata": {}}
            feedback_id = _optional_uuid(payload.get("id"), "feedback id") or str(uuid.uuid4())
            record = {
                "id": feedback_id,
                "created_at": _api_time(_as_datetime(payload.get("created_at"))) or now,
                "modified_at": _api_time(_as_datetime(payload.get("modified_at"))) or now,
                "run_id": run_id,
                "trace_id": _optional_uuid(payload.get("trace_id"))
                or (run["trace_id"] if run else None),
                "key": str(payload["key"]),
                "score": float(score) if isinstance(score, bool) else score,
                "value": payload.get("value"),
                "comment": payload.get("comment"),
                "correction": payload.get("correction"),
                "feedback_source": {
                    "type": source.get("type", "api"),
                    "metadata": source.get("metadata") or {},
                    "user_id": source.get("user_id"),
                    "user_name": source.get("user_name"),
                },
                "session_id": _optional_uuid(payload.get("session_id"))
                or (run["session_id"] if run else None),
                "start_time": run["start_time"] if run else None,
                "comparative_experiment_id": _optional_uuid(
                    payload.get("comparative_experiment_id")
                ),
                "feedback_group_id": _optional_uuid(payload.get("feedback_group_id")),
                "extra": payload.get("extra"),
            }
            if feedback_id in self._feedback:
                raise ApiError(409, f"feedback {feedback_id} already exists")
            self._feedback[feedback_id] = record
            if run_id:
                self._feedback_by_run[run_id].append(feedback_id)
            return record

    def add_feedback(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Load feedback records directly (as `list_feedback` returns them); returns ids."""
        return [self.create_feedback(r, require_run=False)["id"] for r in records]

    def get_feedback(self, feedback_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._feedback.get(feedback_id)
            if record is None:
                raise ApiError(404, "Feedback not found")
            return record

    def list_feedback(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`GET /feedback`: run ids, keys, source types, sessions; oldest first."""
        runs = list(dict.fromkeys(params.get("run") or []))
        keys = set(params.get("key") or [])
        sources = set(params.get("source") or [])
        sessions = set(params.get("session") or [])
        with self._lock:
            if runs:
                ids = [f for run_id in runs for f in self._feedback_by_run.get(run_id, [])]
            else:
                ids = list(self._feedback)
            chosen = [self._feedback[f] for f in ids]
        return [
            f
            for f in chosen
            if (not keys or f["key"] in keys)
            and (not sources or f["feedback_source"]["type"] in sources)
            and (not sessions or f["session_id"] in sessions)
        ]

    def _feedback_stats(self, run_id: str) -> dict[str, Any] | None:
        """`{key: {"n", "avg", "stdev", "errors", "values", "comments"}}` like the real API."""
        ids = self._feedback_by_run.get(run_id)
        if not ids:
            return None
        by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for feedback_id in ids:
            record = self._feedback[feedback_id]
            by_key[record["key"]].append(record)
        stats = {}
        for key, records in by_key.items():
            scores = [float(r["score"]) for r in records if r["score"] is not None]
            values: dict[str, int] = defaultdict(int)
            for r in records:
                if r["value"] is not None:
                    values[str(r["value"])] += 1
            stats[key] = {
                "n": len(records),
                "avg": statistics.fmean(scores) if scores else None,
                "stdev": statistics.pstdev(scores) if scores else None,
                "errors": 0,
                "values": dict(values),
                "comments": [r["comment"] for r in records if r["comment"]],
            }
        return stats

    # -- datasets and examples ----------------------------------------------------------------

    def create_dataset(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        name = payload.get("name")
        if not name:
            raise ApiError(422, "a dataset needs a name")
        with self._lock:
            if any(d["name"] == name for d in self._datasets.values()):
                raise ApiError(409, f"Dataset with name {name!r} already exists")
            now = _api_time(_now())
            dataset_id = _optional_uuid(payload.get("id"), "dataset id") or str(uuid.uuid4())
            extra = payload.get("extra") or {}
            self._datasets[dataset_id] = {
                "id": dataset_id,
                "name": name,
                "description": payload.get("description"),
                "data_type": payload.get("data_type") or "kv",
                "created_at": now,
                "modified_at": now,
                "tenant_id": TENANT_ID,
                "inputs_schema_definition": payload.get("inputs_schema_definition"),
                "outputs_schema_definition": payload.get("outputs_schema_definition"),
                "transformations": payload.get("transformations"),
                "metadata": extra.get("metadata") if isinstance(extra, dict) else None,
            }
            return self.dataset(dataset_id)

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._datasets.get(dataset_id)
            if record is None:
                raise ApiError(404, "Dataset not found")
            sessions = [
                p for p in self._projects.values() if p["reference_dataset_id"] == dataset_id
            ]
            return {
                **record,
                "example_count": len(self._examples_by_dataset.get(dataset_id, [])),
                "session_count": len(sessions),
                "last_session_start_time": max((p["start_time"] for p in sessions), default=None),
            }

    def list_datasets(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        ids = set(params.get("id") or [])
        name = params.get("name")
        contains = (params.get("name_contains") or "").lower()
        data_type = params.get("data_type")
        with self._lock:
            return [
                self.dataset(dataset_id)
                for dataset_id, d in self._datasets.items()
                if (not ids or dataset_id in ids)
                and (name is None or d["name"] == name)
                and contains in d["name"].lower()
                and (data_type is None or d["data_type"] == data_type)
            ]

    def delete_dataset(self, dataset_id: str) -> None:
        with self._lock:
            if self._datasets.pop(dataset_id, None) is None:
                raise ApiError(404, "Dataset not found")
            for example_id in self._examples_by_dataset.pop(dataset_id, []):
                del self._examples[example_id]

    def create_example(self, payload: Mapping[str, Any], dataset_id: str | None = None) -> str:
        """One example (`/examples`, `/examples/bulk`, multipart); returns its id."""
        dataset_id = dataset_id or _uuid(payload.get("dataset_id"), "dataset_id")
        with self._lock:
            if dataset_id not in self._datasets:
                raise ApiError(404, "Dataset not found")
            example_id = _optional_uuid(payload.get("id"), "example id") or str(uuid.uuid4())
            if example_id in self._examples:
                raise ApiError(409, f"Example {example_id} already exists")
            split = payload.get("split") or "base"
            created = _api_time(_as_datetime(payload.get("created_at")) or _now())
            self._examples[example_id] = {
                "id": example_id,
                "dataset_id": dataset_id,
                "inputs": payload.get("inputs") or {},
                "outputs": payload.get("outputs"),
                "metadata": {
                    **(payload.get("metadata") or {}),
                    "dataset_split": split if isinstance(split, list) else [split],
                },
                "created_at": created,
                "modified_at": created,
                "source_run_id": _optional_uuid(payload.get("source_run_id")),
            }
            self._examples_by_dataset[dataset_id].append(example_id)
            self._datasets[dataset_id] = {**self._datasets[dataset_id], "modified_at": created}
            return example_id

    def example(self, example_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._examples.get(example_id)
            if record is None:
                raise ApiError(404, "Example not found")
            return record

    def list_examples(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`GET /examples`: by dataset and/or ids, splits and metadata; in creation order."""
        ids = params.get("id") or []
        dataset = params.get("dataset")
        splits = set(params.get("splits") or [])
        metadata = params.get("metadata") or {}
        with self._lock:
            if ids:
                chosen = [self._examples[i] for i in ids if i in self._examples]
            elif dataset:
                chosen = [self._examples[i] for i in self._examples_by_dataset.get(dataset, [])]
            else:
                chosen = list(self._examples.values())
        return [
            e
            for e in chosen
            if (not dataset or e["dataset_id"] == dataset)
            and (not splits or splits & set(e["metadata"].get("dataset_split", [])))
            and all(e["metadata"].get(k) == v for k, v in metadata.items())
        ]


def _from_cursor(
    keys: Sequence[tuple[str, str]], after: tuple[str, str] | None, descending: bool
) -> Iterator[tuple[str, str]]:
    """Keys strictly after `after` in page order, without copying the list."""
    if descending:
        position = len(keys) if after is None else bisect.bisect_left(keys, after)
        for index in range(position - 1, -1, -1):
            yield keys[index]
    else:
        position = 0 if after is None else bisect.bisect_right(keys, after)
        for index in range(position, len(keys)):
            yield keys[index]


def _encode_cursor(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(_dumps(list(key))).decode()


def _decode_cursor(cursor: Any) -> tuple[str, str]:
    try:
        start, run_id = _loads(base64.urlsafe_b64decode(str(cursor).encode()))
        return str(start), str(run_id)
    except (ValueError, TypeError, ApiError) as exc:
        raise ApiError(400, f"Invalid cursor: {cursor!r}") from exc


# --------------------------------------------------------------------------------------------
# The Flask app


def _info(multipart: bool) -> dict[str, Any]:
    return {
        "version": SERVER_VERSION,
        "license_expiration_time": None,
        "batch_ingest_config": {
            "use_multipart_endpoint": multipart,
            "scale_up_qsize_trigger": 1000,
            "scale_up_nthreads_limit": 16,
            "scale_down_nempty_trigger": 4,
            "size_limit": 100,
            "size_limit_bytes": 20_971_520,
        },
        "instance_flags": {
            "dataset_examples_multipart_enabled": True,
            "examples_multipart_enabled": True,
            "zstd_compression_enabled": True,
            "search_enabled": True,
        },
    }


def _body() -> Any:
    return _loads(request.get_data()) if request.get_data() else {}


def _flag(name: str) -> bool | None:
    value = request.args.get(name)
    return None if value is None else value.lower() in ("true", "1", "yes")


def _page(items: list[Any]) -> list[Any]:
    """Offset/limit pagination of the list endpoints, as `_get_paginated_list` walks it."""
    offset = int(request.args.get("offset", 0))
    limit = int(request.args.get("limit", 100))
    return items[offset : offset + limit]


def _multipart_form() -> MultiDict[str, str]:
    """The multipart fields, zstd-decompressed first when the SDK compressed the stream."""
    if request.headers.get("Content-Encoding", "").lower() != "zstd":
        return request.form
    import zstandard  # the SDK compresses only when it is installed, so it is here too

    reader = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(request.get_data()), read_across_frames=True
    )
    raw = reader.read()
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": request.content_type,
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
    }
    _, form, _ = parse_form_data(environ, max_form_memory_size=None, max_form_parts=None)
    return form


def _multipart_parts() -> dict[str, dict[str, Any]]:
    """`post.<id>`, `post.<id>.inputs`, `feedback.<id>`... grouped by `<op>.<id>`.

    Attachments (`attachment.<id>.<name>`) are accepted and dropped.
    """
    grouped: dict[str, dict[str, Any]] = {}
    for name, value in _multipart_form().items(multi=True):
        op, _, rest = name.partition(".")
        run_id, _, field = rest.partition(".")
        if op not in ("post", "patch", "feedback"):
            continue
        target = grouped.setdefault(f"{op}.{run_id}", {})
        if field:
            target[field] = _loads(value)
        else:
            target.update(_loads(value))
    return grouped


#: One request as the stand-in saw it: method, path and `Content-Encoding` (zstd or None).
RequestRecord = tuple[str, str, str | None]


def create_app(
    api_key: str,
    store: RunStore | None = None,
    *,
    multipart: bool = True,
    log: list[RequestRecord] | None = None,
) -> Flask:
    """The LangSmith API stand-in as a Flask app.

    `multipart` says whether `/info` steers the SDK's background ingestion to
    `/runs/multipart` (what the real API does today) or to `/runs/batch`; both always work.
    Every request is appended to `log`, so tests can tell which endpoint the SDK chose.
    """
    state = store if store is not None else RunStore()
    seen = log if log is not None else []
    app = Flask("langsmith-standin")
    app.config.update(MAX_FORM_MEMORY_SIZE=None, MAX_FORM_PARTS=None, MAX_CONTENT_LENGTH=None)

    @app.before_request
    def authenticate() -> Response | None:
        seen.append((request.method, request.path, request.headers.get("Content-Encoding")))
        # `/info` is public on the real API too; the SDK reads it before anything else.
        if request.path == "/info" or request.headers.get("x-api-key") == api_key:
            return None
        return _json_response({"detail": "Invalid token"}, 401)

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return _json_response({"detail": error.detail}, error.status)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return _json_response({"detail": error.name}, error.code or 500)

    @app.get("/info")
    def info() -> Response:
        return _json_response(_info(multipart))

    # -- runs

    @app.post("/runs")
    def post_run() -> Response:
        state.create_run(_body())
        return _json_response({}, 202)

    @app.patch("/runs/<run_id>")
    def patch_run(run_id: str) -> Response:
        state.update_run(_uuid(run_id, "run id"), _body())
        return _json_response({}, 202)

    @app.get("/runs/<run_id>")
    def get_run(run_id: str) -> Response:
        return _json_response(state.get_run(_uuid(run_id, "run id")))

    @app.post("/runs/batch")
    def batch() -> Response:
        body = _body()
        state.ingest(body.get("post") or [], body.get("patch") or [])
        return _json_response({}, 202)

    @app.post("/runs/multipart")
    def multipart_ingest() -> Response:
        grouped = _multipart_parts()
        by_op: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for name, payload in grouped.items():
            op, _, run_id = name.partition(".")
            by_op[op].append({"id": run_id, **payload})
        state.ingest(by_op["post"], by_op["patch"], by_op["feedback"])
        return _json_response({}, 202)

    @app.post("/runs/query")
    def query_runs() -> Response:
        return _json_response(state.query_runs(_body()))

    # -- projects

    @app.post("/sessions")
    def create_session() -> Response:
        body = _body()
        if not body.get("name"):
            raise ApiError(422, "a session needs a name")
        project_id = state.create_project(
            body["name"],
            project_id=body.get("id"),
            description=body.get("description"),
            extra=body.get("extra"),
            reference_dataset_id=body.get("reference_dataset_id"),
            upsert=bool(_flag("upsert")),
        )
        return _json_response(state.project(project_id))

    @app.get("/sessions")
    def list_sessions() -> Response:
        params = {
            "id": [_uuid(i, "session id") for i in request.args.getlist("id")],
            "name": request.args.get("name"),
            "name_contains": request.args.get("name_contains"),
            "reference_dataset": _optional_uuid(request.args.get("reference_dataset")),
            "reference_free": _flag("reference_free"),
        }
        return _json_response(_page(state.list_projects(params)))

    @app.get("/sessions/<project_id>")
    def get_session(project_id: str) -> Response:
        return _json_response(state.project(_uuid(project_id, "session id")))

    @app.patch("/sessions/<project_id>")
    def patch_session(project_id: str) -> Response:
        return _json_response(state.update_project(_uuid(project_id, "session id"), _body()))

    @app.delete("/sessions/<project_id>")
    def delete_session(project_id: str) -> Response:
        state.delete_project(_uuid(project_id, "session id"))
        return _json_response({})

    # -- feedback

    @app.post("/feedback")
    def create_feedback() -> Response:
        return _json_response(state.create_feedback(_body()))

    @app.get("/feedback")
    def list_feedback() -> Response:
        params = {
            "run": [_uuid(i, "run id") for i in request.args.getlist("run")],
            "key": request.args.getlist("key"),
            "source": request.args.getlist("source"),
            "session": [_uuid(i, "session id") for i in request.args.getlist("session")],
        }
        return _json_response(_page(state.list_feedback(params)))

    @app.get("/feedback/<feedback_id>")
    def get_feedback(feedback_id: str) -> Response:
        return _json_response(state.get_feedback(_uuid(feedback_id, "feedback id")))

    # -- datasets and examples

    @app.post("/datasets")
    def create_dataset() -> Response:
        return _json_response(state.create_dataset(_body()))

    @app.get("/datasets")
    def list_datasets() -> Response:
        params = {
            "id": [_uuid(i, "dataset id") for i in request.args.getlist("id")],
            "name": request.args.get("name"),
            "name_contains": request.args.get("name_contains"),
            "data_type": request.args.get("data_type"),
        }
        return _json_response(_page(state.list_datasets(params)))

    @app.get("/datasets/<dataset_id>")
    def get_dataset(dataset_id: str) -> Response:
        return _json_response(state.dataset(_uuid(dataset_id, "dataset id")))

    @app.delete("/datasets/<dataset_id>")
    def delete_dataset(dataset_id: str) -> Response:
        state.delete_dataset(_uuid(dataset_id, "dataset id"))
        return _json_response({})

    @app.post("/examples")
    def create_example() -> Response:
        return _json_response(state.example(state.create_example(_body())))

    @app.post("/examples/bulk")
    def create_examples_bulk() -> Response:
        ids = [state.create_example(payload) for payload in _body()]
        return _json_response([state.example(i) for i in ids])

    @app.post("/v1/platform/datasets/<dataset_id>/examples")
    def upload_examples(dataset_id: str) -> Response:
        grouped: dict[str, dict[str, Any]] = {}
        for name, value in request.form.items(multi=True):
            example_id, _, field = name.partition(".")
            if field.startswith("attachment"):
                continue
            target = grouped.setdefault(example_id, {"id": example_id})
            if field:
                target[field] = _loads(value)
            else:
                target.update(_loads(value))
        dataset = _uuid(dataset_id, "dataset id")
        ids = [state.create_example(payload, dataset) for payload in grouped.values()]
        return _json_response({"example_ids": ids, "count": len(ids), "as_of": _api_time(_now())})

    @app.get("/examples")
    def list_examples() -> Response:
        metadata = request.args.get("metadata")
        params = {
            "id": [_uuid(i, "example id") for i in request.args.getlist("id")],
            "dataset": _optional_uuid(request.args.get("dataset"), "dataset id"),
            "splits": request.args.getlist("splits"),
            "metadata": _loads(metadata) if metadata else {},
        }
        if request.args.get("filter"):
            raise ApiError(400, "example filters are not supported by this server")
        return _json_response(_page(state.list_examples(params)))

    @app.get("/examples/<example_id>")
    def get_example(example_id: str) -> Response:
        return _json_response(state.example(_uuid(example_id, "example id")))

    return app


class LangSmithStandIn:
    """The stand-in served on a free loopback port, from construction until `stop()`.

    >>> with LangSmithStandIn(api_key="test-key") as langsmith:
    ...     client = langsmith_sdk.Client(api_url=langsmith.url, api_key=langsmith.api_key)
    """

    def __init__(
        self,
        api_key: str = "standin-key",
        store: RunStore | None = None,
        *,
        multipart: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.store = store if store is not None else RunStore()
        self.requests: list[RequestRecord] = []
        app = create_app(api_key, self.store, multipart=multipart, log=self.requests)
        self._server = BackgroundServer(app, host, port)
        self.url = self._server.url

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LangSmithStandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


__all__ = [
    "MAX_PAGE",
    "RUN_FIELDS",
    "ApiError",
    "FilterError",
    "LangSmithStandIn",
    "RequestRecord",
    "RunStore",
    "compile_filter",
    "create_app",
]
