"""Reading a request the way the real API does: JSON bodies, flags, offset pages, multipart."""

from __future__ import annotations

import io
from typing import Any

from flask import request
from werkzeug.datastructures import MultiDict
from werkzeug.formparser import parse_form_data

from standins.langsmith.wire import loads


def body() -> Any:
    return loads(request.get_data()) if request.get_data() else {}


def flag(name: str) -> bool | None:
    value = request.args.get(name)
    return None if value is None else value.lower() in ("true", "1", "yes")


def page(items: list[Any]) -> list[Any]:
    """Offset/limit pagination of the list endpoints, as `_get_paginated_list` walks it."""
    offset = int(request.args.get("offset", 0))
    limit = int(request.args.get("limit", 100))
    return items[offset : offset + limit]


def multipart_form() -> MultiDict[str, str]:
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


def multipart_parts() -> dict[str, dict[str, Any]]:
    """`post.<id>`, `post.<id>.inputs`, `feedback.<id>`... grouped by `<op>.<id>`.

    Attachments (`attachment.<id>.<name>`) are accepted and dropped.
    """
    grouped: dict[str, dict[str, Any]] = {}
    for name, value in multipart_form().items(multi=True):
        op, _, rest = name.partition(".")
        run_id, _, field = rest.partition(".")
        if op not in ("post", "patch", "feedback"):
            continue
        target = grouped.setdefault(f"{op}.{run_id}", {})
        if field:
            target[field] = loads(value)
        else:
            target.update(loads(value))
    return grouped
