"""What every backend command shares: output lines, JSONL on stdin, the backend, a project."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.settings import Settings

if TYPE_CHECKING:
    from tracetune.backend.services import Backend


def out(line: str) -> None:
    sys.stdout.write(line + "\n")


def read_jsonl(stream: TextIO) -> list[dict[str, Any]]:
    """Lines of JSON objects, each with a string `text`."""
    records = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"stdin line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InvalidInputError(f"stdin line {number}: needs an object with a string 'text'")
        records.append(record)
    return records


def write_jsonl(records: Iterable[dict[str, Any]]) -> None:
    for record in records:
        out(json.dumps(record, ensure_ascii=False))


def backend_for(settings: Settings) -> Backend:
    """The backend's parts in this process; a down Redis fails here with one line."""
    from tracetune.backend.services import Backend
    from tracetune.sync.redis_client import redis_client

    redis_client(settings.redis_url)
    return Backend.create(settings)
