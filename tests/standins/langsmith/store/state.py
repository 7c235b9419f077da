"""The records every resource of the store shares, and the one lock that guards them."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any


class StoreState:
    """Projects, runs, datasets, examples and feedback, in memory, with their indexes.

    Runs are kept per project in a list sorted by `(start_time, id)`, so a page of a run query
    resumes from its cursor with a bisect and reads only what it returns. Stored records are
    replaced on every change, never mutated in place (but for a cached search text), so a
    response can be serialized outside the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._projects: dict[str, dict[str, Any]] = {}
        self._project_ids_by_name: dict[str, str] = {}
        self._runs: dict[str, dict[str, Any]] = {}
        self._order: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._traces: dict[str, list[str]] = defaultdict(list)
        self._pending_patches: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        self._datasets: dict[str, dict[str, Any]] = {}
        self._examples: dict[str, dict[str, Any]] = {}
        self._examples_by_dataset: dict[str, list[str]] = defaultdict(list)
        self._feedback: dict[str, dict[str, Any]] = {}
        self._feedback_by_run: dict[str, list[str]] = defaultdict(list)
