"""Scoring a batch against its near-duplicate candidates, every pair at once.

Comparing candidates one task and one candidate at a time in Python cost most of a cached
prediction. Here every (task, candidate) pair of a batch is one row: one array comparison per
side gives every estimated Jaccard similarity, one sort ranks every task's duplicates. The
numbers are those of the one-at-a-time comparison: the share of equal MinHash values (an
exact count divided by the signature length), the least similar side, the rule's verdict,
duplicates by closeness then task id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Protocol, cast

import numpy as np


class DuplicateRule(Protocol):
    """Decides from a candidate's estimated Jaccard similarity per side (the sides the task
    has; a side the candidate lacks counts 0) whether the task duplicates it.

    `confirms_all` decides for many candidates at once: one array per side, one entry per
    candidate. `key` names the rule and its settings: matches kept under another are stale.
    """

    @property
    def key(self) -> str: ...

    def confirms(self, similarities: Mapping[str, float]) -> bool: ...

    def confirms_all(self, similarities: Mapping[str, np.ndarray]) -> np.ndarray: ...


class SignatureTable:
    """One side's signatures of the tasks a batch compares with, as one matrix."""

    def __init__(self, signatures: Mapping[int, np.ndarray | None], length: int) -> None:
        known = sorted(t for t, s in signatures.items() if s is not None)
        self.ids = np.asarray(known, dtype=np.int64)
        self.matrix = (
            np.stack([cast(np.ndarray, signatures[t]) for t in known])
            if known
            else np.zeros((0, length), dtype=np.uint32)
        )

    def rows_of(self, task_ids: np.ndarray) -> np.ndarray:
        """Each task's row, or -1 for a task without a signature on this side."""
        if not len(self.ids):
            return np.full(len(task_ids), -1, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.ids, task_ids), len(self.ids) - 1)
        return np.where(self.ids[rows] == task_ids, rows, -1)


@dataclass(frozen=True)
class Scored:
    """A task's near-duplicate score (its closest candidate) and its confirmed duplicates,
    with the closeness (least similar side) of each."""

    score: float
    duplicate_of: tuple[int, ...]
    closeness: tuple[float, ...]


@dataclass(frozen=True)
class Comparisons:
    """Every (task, candidate) pair a batch compared, one entry each: the task's position in
    the batch, the candidate, their closeness, and whether the rule confirmed it."""

    task: np.ndarray
    other: np.ndarray
    closeness: np.ndarray
    confirmed: np.ndarray


def score_candidates(
    sides: Sequence[Mapping[str, np.ndarray | None]],
    candidates: Sequence[set[int]],
    tables: Mapping[str, SignatureTable],
    rule: DuplicateRule,
    listed: int,
) -> tuple[list[Scored], Comparisons]:
    """Per task (its signatures per side, its candidates), the score and up to `listed`
    duplicates, most similar first (ties by task id); and every pair compared."""
    counts = np.array([len(c) for c in candidates], dtype=np.int64)
    pair_task = np.repeat(np.arange(len(sides)), counts)
    others = np.fromiter(chain.from_iterable(candidates), np.int64, int(counts.sum()))
    closeness = np.zeros(len(others))
    confirmed = np.zeros(len(others), dtype=bool)
    judged = np.zeros(len(others), dtype=bool)
    # Tasks with the same sides (both, or the user turns alone) are judged together.
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, found in enumerate(sides):
        groups.setdefault(tuple(k for k, s in found.items() if s is not None), []).append(position)
    for kinds, members in groups.items():
        pairs = np.flatnonzero(np.isin(pair_task, members))
        if not kinds or not len(pairs):
            continue
        per_side = {
            kind: _similarities(tables[kind], sides, kind, pair_task[pairs], others[pairs])
            for kind in kinds
        }
        closeness[pairs] = np.minimum.reduce(list(per_side.values()))
        confirmed[pairs] = rule.confirms_all(per_side)
        judged[pairs] = True

    chosen = np.flatnonzero(confirmed)
    order = chosen[np.lexsort((others[chosen], -closeness[chosen], pair_task[chosen]))]
    ranked_task = pair_task[order]
    positions = np.arange(len(sides))
    starts = np.searchsorted(ranked_task, positions)
    ends = np.minimum(np.searchsorted(ranked_task, positions, side="right"), starts + listed)
    # Each task's score: its closest judged candidate (0 without any).
    best = np.zeros(len(sides))
    judged_closeness = np.where(judged, closeness, -np.inf)
    has_pairs = counts > 0
    if has_pairs.any():
        first_pair = (np.cumsum(counts) - counts)[has_pairs]
        best[has_pairs] = np.maximum.reduceat(judged_closeness, first_pair)
    best = np.clip(np.where(np.isneginf(best), 0.0, best), 0.0, 1.0).tolist()
    scored = []
    for position in range(len(sides)):
        ranked = order[starts[position] : ends[position]]
        listed_ids, listed_closeness = others[ranked].tolist(), closeness[ranked].tolist()
        scored.append(Scored(best[position], tuple(listed_ids), tuple(listed_closeness)))
    return scored, Comparisons(pair_task, others, closeness, confirmed)


#: (task, candidate) pairs compared in one array operation: bounds the copies it makes.
PAIRS_PER_CHUNK = 32_768


def _similarities(
    table: SignatureTable,
    sides: Sequence[Mapping[str, np.ndarray | None]],
    kind: str,
    pair_task: np.ndarray,
    others: np.ndarray,
) -> np.ndarray:
    """Estimated Jaccard similarity of each (task, candidate) pair on one side, 0 where the
    candidate has no signature there: the share of equal MinHash values. Every task of
    `pair_task` has a signature on this side. All pairs are compared in a few array
    operations (a task has a handful of candidates, so a loop per task cost more than the
    comparisons)."""
    found = np.zeros(len(others))
    rows = table.rows_of(others)
    known = np.flatnonzero(rows >= 0)
    if not len(known):
        return found
    positions = np.unique(pair_task[known])
    own = np.stack([cast(np.ndarray, sides[int(p)][kind]) for p in positions])
    width = table.matrix.shape[1]
    for start in range(0, len(known), PAIRS_PER_CHUNK):
        chunk = known[start : start + PAIRS_PER_CHUNK]
        mine = own[np.searchsorted(positions, pair_task[chunk])]
        equal = np.count_nonzero(table.matrix[rows[chunk]] == mine, axis=1)
        found[chunk] = equal / width
    return found
