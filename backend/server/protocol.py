"""Reading Label Studio's ML-backend requests (as Label Studio 1.23 sends them) strictly.

Label Studio posts JSON; project ids arrive as "<id>.<created_at epoch>" strings. Anything
else gets a 4xx with a message naming what is wrong, never a stack trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from flask import request
from flask.json.provider import DefaultJSONProvider

from tracetune.sync.errors import InvalidInputError


class MalformedRequestError(InvalidInputError):
    """The body is not a JSON object (HTTP 400)."""


class OrjsonProvider(DefaultJSONProvider):
    """JSON read and written by orjson: a batch of 100 predictions took longer to encode and
    decode with Python's json than to read from the caches. What orjson refuses falls back to
    Python's json: a type only Flask's encoder knows, and a body orjson will not read (NaN,
    integers beyond 64 bits, nesting deeper than 1,024), which Python's json then reads or
    refuses with its own error (`json_body` reports nesting too deep as such)."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            return super().loads(s, **kwargs)


def json_body() -> Mapping[str, Any]:
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError as exc:  # nested deeper than the JSON parser goes
        raise MalformedRequestError("the request body is nested too deeply") from exc
    if body is None:
        raise MalformedRequestError("the request body must be JSON")
    if not isinstance(body, Mapping):
        kind = type(body).__name__
        raise MalformedRequestError(f"the request body must be a JSON object, got {kind}")
    return body


def project_key(value: Any) -> str:
    """The project's numeric id from Label Studio's "<id>.<epoch>" uid (or a bare id)."""
    if isinstance(value, bool) or value is None:
        raise InvalidInputError("the request needs the 'project' Label Studio sends")
    text = str(value).split(".", 1)[0]
    if not text.isdigit():
        raise InvalidInputError(f"'project' must look like '<id>.<timestamp>', got {value!r}")
    return text


def required_list(body: Mapping[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise InvalidInputError(f"the request needs {name!r} as a list")
    return value
