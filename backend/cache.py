"""Content-addressed caches in Redis, shared by every backend and worker process.

Keys are the SHA-256 of the text, so the same text costs one computation however many tasks,
requests or processes see it. Everything the backend keeps lives under `tracetune:backend:`.

A batch whose texts are all cached is read in one round trip: the predictor gathers the keys
of every cache it will consult (each signal's results, the vectors, the MinHash signatures),
reads them with one MGET (`BatchRead`), and every cache then reads from Redis only the keys it
was not given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, cast

import orjson
import redis

PREFIX = "tracetune:backend:"


def key(*parts: str | int) -> str:
    """A Redis key in the backend's namespace."""
    return PREFIX + ":".join(map(str, parts))


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class BatchRead:
    """What one batch reads from the caches: each text's hash computed once, and the values
    of many keys read together (`prefetch`: one MGET for every cache of a batch)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._hashes: dict[str, str] = {}
        self._values: dict[str, bytes | None] = {}

    def hash(self, text: str) -> str:
        found = self._hashes.get(text)
        if found is None:
            found = self._hashes[text] = content_hash(text)
        return found

    def prefetch(self, keys: Sequence[str]) -> None:
        """Read the values of `keys` not read yet, in one MGET."""
        absent = list(dict.fromkeys(k for k in keys if k not in self._values))
        if absent:
            stored = cast(list[bytes | None], self.client.mget(absent))
            self._values.update(zip(absent, stored, strict=True))

    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`: what was read already, the rest in one MGET."""
        self.prefetch(keys)
        return [self._values[k] for k in keys]


def _decode(raw: bytes) -> Any:
    """orjson reads what `json.dumps` wrote several times faster (and to the same values for
    everything a signal returns: it differs only on integers beyond 64 bits); NaN and
    Infinity, which only Python's json writes, fall back to it."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


class JsonCache:
    """JSON values per text under one namespace (one signal, one code version)."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def key_of(self, text_hash: str) -> str:
        return key(self.namespace, text_hash)

    def get_or_compute(
        self,
        texts: Sequence[str],
        compute: Callable[[list[str]], list[Any]],
        reads: BatchRead | None = None,
    ) -> list[Any]:
        """Values for `texts`; `compute` runs once, on the distinct texts the cache lacks.
        `reads`: the batch's reads, when it prefetched them."""
        reads = reads or BatchRead(self.client)
        hashes = [reads.hash(t) for t in texts]
        unique = list(dict.fromkeys(hashes))
        stored = reads.get([key(self.namespace, h) for h in unique]) if unique else []
        found: dict[str, Any] = {
            h: _decode(v) for h, v in zip(unique, stored, strict=True) if v is not None
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
