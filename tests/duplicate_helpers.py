"""Shared by the near-duplicate index tests: one backend process's index of a scope."""

from __future__ import annotations

import redis

from tracetune.backend.prediction.near_duplicates import NearDuplicateRule
from tracetune.backend.vectors.ann import VectorIndex
from tracetune.backend.vectors.duplicates import DuplicateIndex


def process(client: redis.Redis, scope: str) -> DuplicateIndex:
    """A `DuplicateIndex` with its own `VectorIndex`: what one backend process holds."""
    return DuplicateIndex(client, scope, NearDuplicateRule(), VectorIndex(client, scope))
