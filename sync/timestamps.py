"""Time as tracetune stores and compares it: UTC, ISO 8601, seconds."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def naive_utc(value: datetime) -> datetime:
    """A datetime comparable with LangSmith's naive UTC times: aware values move to UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
