"""What every resource shares on the wire: errors, JSON, times and ids as the real API has them."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Response

#: The tenant every project, dataset and feedback record belongs to.
TENANT_ID = "7c2f8c5e-2a8e-4a63-9b8e-1f0d6f3b5a10"


class ApiError(Exception):
    """An HTTP error answered as `{"detail": ...}`, the real API's (FastAPI) error body."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def loads(data: bytes | str) -> Any:
    """orjson for speed; the stdlib for what orjson refuses (lone surrogates from bad bytes)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ApiError(422, f"invalid JSON: {exc}") from exc


def dumps(value: Any) -> bytes:
    """orjson, falling back to escaped ASCII for strings that are not valid UTF-8."""
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return json.dumps(value, ensure_ascii=True, default=str).encode()


def json_response(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status=status, mimetype="application/json")


def as_datetime(value: Any) -> datetime | None:
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


def api_time(value: datetime | None) -> str | None:
    """Times as the real API writes them: naive UTC ISO-8601 with microseconds."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid(value: Any, what: str = "id") -> str:
    """The canonical string of a UUID; the fast path matters when loading 10,000 runs."""
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError as exc:
        raise ApiError(422, f"{what} is not a UUID: {value!r}") from exc


def optional_uuid(value: Any, what: str = "id") -> str | None:
    return None if value in (None, "") else canonical_uuid(value, what)


def utc_now() -> datetime:
    return datetime.now(UTC)
