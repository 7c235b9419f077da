"""The one way tracetune connects to Redis: short connect timeouts, our error when it is down.

Every part shares one Redis (sync state, job records, the backend's caches and concepts, RQ),
so every part builds its client here.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import redis

from tracetune.sync.errors import ServiceUnavailableError


def display_url(url: str) -> str:
    """The URL with its password masked, for messages and logs (`tracetune up` sets one)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def redis_client(url: str, *, check: bool = True) -> redis.Redis:
    """A client that fails within seconds instead of hanging a command or a request.

    `check` pings at once, so a command fails before any work with one clear line; the
    backend builds its client unchecked and reports a down Redis per request instead.
    """
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30)
    if check:
        try:
            client.ping()
        except redis.RedisError as exc:
            raise ServiceUnavailableError(
                f"cannot reach Redis at {display_url(url)}: {exc} "
                "(`tracetune up` starts a local one)"
            ) from exc
    return client


def decoded(values: Iterable[object]) -> list[str]:
    """Redis replies (bytes unless the client decodes them) as strings."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
