"""A task's near-duplicate match kept between requests, brought up to date instead of made
again.

A cached prediction used to match every task afresh: the union of its buckets, its
candidates' signatures, every comparison and a graph search were most of what it cost. What a
task with both sides is matched against changes only when a task joins or leaves one of its
`pair` buckets (it looks in those alone: `lsh.py`) or when a vector is written. So its match
is kept in Redis, with the vector log position its nearest task was searched at, and:

- a new task brings the kept matches of the candidates it was compared with up to date
  itself (`with_candidate`): their closeness to it is the one their own comparison would
  find, as the estimate is symmetric;
- a task that leaves or re-enters buckets (edited), and every write made while another
  process wrote too (it could not see what the other wrote), forgets the kept matches of its
  buckets' members instead (`buckets.py`), so they are made afresh when next asked for;
- a kept match is read back with the vectors written since its search scored against its
  nearest task (`ann.py: VectorIndex.ids_since`).

A task with one side only looks in that side's buckets, which every new task's side joins;
its match is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import orjson


def score_of(raw: bytes) -> float:
    """A kept match's score, read from its encoding: a new task not confirmed as a duplicate
    changes only a match it comes closer to than that, so most are never decoded."""
    return float(raw[1 : raw.index(b",")])


@dataclass(frozen=True)
class KeptMatch:
    """What a task's match was when made, under the rule `rule` (`DuplicateRule.key`).

    `position`: the vector log entry its nearest task was searched after (a later entry may
    hold a closer one). `duplicates`: (task id, closeness), most similar first, ties by id.
    """

    rule: str
    position: str
    score: float
    nearest_task_id: int | None
    nearest_similarity: float
    duplicates: tuple[tuple[int, float], ...]

    def encode(self) -> bytes:
        """The score first, so `score_of` reads it without decoding the rest."""
        return orjson.dumps(
            [
                self.score,
                self.rule,
                self.position,
                self.nearest_task_id,
                self.nearest_similarity,
                self.duplicates,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> KeptMatch:
        score, rule, position, nearest_id, similarity, duplicates = orjson.loads(raw)
        return cls(
            rule, position, score, nearest_id, similarity, tuple((t, c) for t, c in duplicates)
        )

    def with_candidate(
        self, task_id: int, closeness: float, confirmed: bool, listed: int
    ) -> KeptMatch | None:
        """The match once a new task at `closeness` (the rule `confirmed` it or not) is among
        the candidates, or None when that changes nothing: the score is the closest
        candidate's, and up to `listed` confirmed duplicates are listed."""
        score = max(self.score, min(closeness, 1.0))
        duplicates = self.duplicates
        if confirmed:
            ranked = sorted((*duplicates, (task_id, closeness)), key=lambda d: (-d[1], d[0]))
            duplicates = tuple(ranked[:listed])
        if score == self.score and duplicates == self.duplicates:
            return None
        return replace(self, score=score, duplicates=duplicates)
