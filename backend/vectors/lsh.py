"""Which LSH buckets a task's MinHash signatures fall in, and which buckets it looks in.

A near-duplicate must be near-identical on every side the task has (its user turns AND its
answer), so a task with both sides looks for candidates in buckets that hash both sides'
rows of a band together (the `pair` family: 32 bands of 4 rows of each side). A pair of
tasks shares such a bucket with probability 1 - (1 - (J_user * J_answer)^4)^32: 0.97 when
both sides sit at the 0.75 threshold, 1.0 for a typo (0.79) with the same answer, and small
for tasks alike on one side only. Looking in buckets of either side alone (as before) made
every task of a templated bot a candidate of every task with the same answer template, and
the candidates of a new task grew with the project (about 75 a task at 10,000 tasks on
`bench/workload.py`, against 16 here; 1.7 against 8 at 1,000).

A task with one side only (no answer yet, or no user turns) looks in that side's own
buckets (16 bands of 8 rows), so every task is indexed in the family of each side it has
and in `pair` when it has both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

USER, ANSWER, PAIR = "user", "answer", "pair"


@dataclass(frozen=True)
class BucketFamily:
    """Buckets over the rows of `sides`, `bands` bands of `rows` rows of each side."""

    name: str
    sides: tuple[str, ...]
    bands: int
    rows: int

    def buckets(self, signatures: Mapping[str, np.ndarray | None]) -> tuple[str, ...] | None:
        """The task's bucket per band (`<band>:<hash>`), or None when it lacks a side."""
        raws = []
        for side in self.sides:
            signature = signatures.get(side)
            if signature is None:
                return None
            raws.append(signature.tobytes())
        return _bands(tuple(raws), self.bands, self.rows)


#: Bucket families by name. `user` and `answer` keep the layout of the earlier index
#: (16 bands of 8 rows per side), so their buckets in Redis stay valid.
FAMILIES = {
    family.name: family
    for family in (
        BucketFamily(USER, (USER,), bands=16, rows=8),
        BucketFamily(ANSWER, (ANSWER,), bands=16, rows=8),
        BucketFamily(PAIR, (USER, ANSWER), bands=32, rows=4),
    )
}


def query_family(signatures: Mapping[str, np.ndarray | None]) -> BucketFamily | None:
    """The family a task finds its candidates in: both sides together when it has both."""
    present = tuple(side for side in (USER, ANSWER) if signatures.get(side) is not None)
    if not present:
        return None
    return FAMILIES[PAIR] if len(present) == 2 else FAMILIES[present[0]]


def indexed_families(signatures: Mapping[str, np.ndarray | None]) -> list[BucketFamily]:
    """The families a task is indexed in: each whose sides it all has."""
    return [f for f in FAMILIES.values() if all(signatures.get(s) is not None for s in f.sides)]


@lru_cache(maxsize=32768)
def _bands(raws: tuple[bytes, ...], bands: int, rows: int) -> tuple[str, ...]:
    """Remembered: a batch asks for each task's buckets up to three times."""
    width = rows * 4  # bytes of `rows` uint32 values
    found = []
    for band in range(bands):
        part = b"".join(raw[band * width : (band + 1) * width] for raw in raws)
        found.append(f"{band}:{hashlib.blake2b(part, digest_size=8).hexdigest()}")
    return tuple(found)
