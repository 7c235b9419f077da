"""Win rate of the candidate with a 95 % interval, from pairwise outcomes.

A tie counts as half a win (as in Chatbot Arena's scores), so the rate is
`(wins + ties / 2) / comparisons`. The interval is Wilson's score interval, which stays inside
[0, 1] and is honest for the few dozen comparisons a review round gives (the normal
approximation is not): with 10 comparisons and 8 wins it is 0.49-0.94, not 0.55-1.05.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["candidate", "baseline", "tie"]
#: The normal quantile of a two-sided 95 % interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - margin), min(1.0, centre + margin))


@dataclass(frozen=True)
class WinRate:
    wins: int
    losses: int
    ties: int

    @property
    def comparisons(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def rate(self) -> float | None:
        return (self.wins + self.ties / 2) / self.comparisons if self.comparisons else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.wins + self.ties / 2, self.comparisons)

    @property
    def worse(self) -> bool:
        """The whole interval below one half: the candidate loses more than chance explains."""
        return self.comparisons > 0 and self.interval[1] < 0.5

    def as_dict(self) -> dict[str, object]:
        low, high = self.interval
        return {
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "comparisons": self.comparisons,
            "win_rate": None if self.rate is None else round(self.rate, 4),
            "interval_95": [round(low, 4), round(high, 4)],
        }


def win_rate(outcomes: Iterable[Outcome]) -> WinRate:
    counted = Counter(outcomes)
    return WinRate(counted["candidate"], counted["baseline"], counted["tie"])
