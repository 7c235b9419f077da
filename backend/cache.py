"""Content-addressed caches in Redis, shared by every backend and worker process.

Keys are the SHA-256 of the text, so the same text costs one computation however many tasks,
requests or processes see it. Everything the backend keeps lives under `tracetune:backend:`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import redis

PREFIX = "tracetune:backend:"


def key(*parts: str | int) -> str:
    """A Redis key in the backend's namespace."""
    return PREFIX + ":".join(map(str, parts))


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class JsonCache:
    """JSON values per text under one namespace (one signal, one code version)."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def get_or_compute(
        self, texts: Sequence[str], compute: Callable[[list[str]], list[Any]]
    ) -> list[Any]:
        """Values for `texts`; `compute` runs once, on the distinct texts the cache lacks."""
        hashes = [content_hash(t) for t in texts]
        unique = list(dict.fromkeys(hashes))
        stored = self.client.mget([key(self.namespace, h) for h in unique]) if unique else []
        found: dict[str, Any] = {
            h: json.loads(v) for h, v in zip(unique, stored, strict=True) if v is not None
        }
        missing = [h for h in unique if h not in found]
        if missing:
            text_of = dict(zip(hashes, texts, strict=True))
            computed = compute([text_of[h] for h in missing])
            found.update(zip(missing, computed, strict=True))
            self.client.mset(
                {
                    key(self.namespace, h): json.dumps(value, separators=(",", ":"))
                    for h, value in zip(missing, computed, strict=True)
                }
            )
        return [found[h] for h in hashes]
