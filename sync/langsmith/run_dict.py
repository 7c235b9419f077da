"""A run's fields as the v1 run dict every source yields, built without the SDK's `Run` model.

The dict is what `langsmith.schemas.Run(**fields).model_dump(mode="json")` gives: every
field of the model, ids as canonical UUID strings, times as ISO 8601 (`Z` for UTC, no
fraction when it is zero), the model's defaults and its `__init__` fill-ins (`trace_id`,
`dotted_order`, `extra`). Building it here costs a tenth of validating and dumping the model,
which was a third of a sync's own time. Fields the fast path does not recognise as the API's
usual shapes (a number for a time, a UUID in another spelling, a wrong type) go through the
model itself, so they are converted, or refused, exactly as before.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from langsmith import schemas

from tracetune.sync.langsmith.sources import run_as_dict

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ID_FIELDS = ("id", "trace_id", "session_id", "parent_run_id", "reference_example_id")
_TIME_FIELDS = ("start_time", "end_time")
_DICT_FIELDS = ("extra", "inputs", "outputs", "feedback_stats")
#: The fields the fast path checks; a run with any other goes through the model.
_CHECKED = frozenset(
    {*_ID_FIELDS, *_TIME_FIELDS, *_DICT_FIELDS, "name", "run_type", "status", "error", "tags",
     "dotted_order", "parent_run_ids"}
)  # fmt: skip
#: Every field of `schemas.Run`, in its order, with what `model_dump(mode="json")` writes for
#: a field the run does not set (`_fast` gives each run fresh copies of the mutable ones).
_DEFAULTS: dict[str, Any] = {
    name: (None if info.is_required() else info.get_default(call_default_factory=True))
    for name, info in schemas.Run.model_fields.items()
}


class _Irregular(Exception):
    """A value the fast path does not reproduce; the SDK's model handles the run."""


def run_dict(fields: dict[str, Any]) -> dict[str, Any]:
    """The v1 run dict of `fields` (v1 names, `None` for unset), as the SDK's model dumps it."""
    given = {name: value for name, value in fields.items() if value is not None}
    try:
        return _fast(given)
    except _Irregular:
        return run_as_dict(schemas.Run(**given))


def _fast(given: dict[str, Any]) -> dict[str, Any]:
    if "id" not in given or not given.keys() <= _CHECKED:
        raise _Irregular
    if not isinstance(given.get("name"), str) or not isinstance(given.get("run_type"), str):
        raise _Irregular
    # The model's mutable defaults, fresh for each run.
    run = {**_DEFAULTS, "extra": {"metadata": {}}, "inputs": {}, "attachments": {}, **given}
    for name in _ID_FIELDS:
        if name in given and not _is_uuid(given[name]):
            raise _Irregular
    for name in _DICT_FIELDS:
        if name in given and not isinstance(given[name], dict):
            raise _Irregular
    if not _optional_strings(given, ("error", "status", "dotted_order")):
        raise _Irregular
    run["tags"] = _strings(given["tags"]) if "tags" in given else None
    run["parent_run_ids"] = _uuids(given["parent_run_ids"]) if "parent_run_ids" in given else None
    start = _aware(given.get("start_time"))
    run["start_time"] = _iso(start)
    if "end_time" in given:
        run["end_time"] = _iso(_aware(given["end_time"]))
    if not given.get("trace_id"):
        run["trace_id"] = run["id"]
    if not run["dotted_order"].strip() and not given.get("parent_run_id"):
        run["dotted_order"] = f"{start.isoformat()}{run['id']}"
    return run


def _is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def _optional_strings(given: dict[str, Any], names: tuple[str, ...]) -> bool:
    return all(isinstance(given[name], str) for name in names if name in given)


def _strings(values: Any) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Irregular
    return list(values)


def _uuids(values: Any) -> list[str]:
    if not isinstance(values, list) or not all(_is_uuid(v) for v in values):
        raise _Irregular
    return list(values)


def _aware(value: Any) -> datetime:
    """A time as the model holds it: parsed, and UTC when the string names no offset."""
    if not isinstance(value, str):
        raise _Irregular
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _Irregular from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    """pydantic's JSON form of a datetime: ISO 8601, `Z` for UTC."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
