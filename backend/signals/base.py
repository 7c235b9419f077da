"""The signal contract and its registry: one small class per signal, registered once.

A signal reads texts and returns, per text, a score in [0, 1] (how strongly its flag applies),
character spans where it found something, and free-form values (a language code, counts).
Results must be plain JSON so they can be cached in Redis by content hash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

#: A signal has found what it looks for at this score; its flag fires there.
SIGNAL_THRESHOLD = 0.5


class Reads(StrEnum):
    """Which task texts a signal or a concept looks at."""

    ALL = "all"  # every text field, and each dialogue message for span signals
    ANSWERS = "answers"  # only the model's answers (a refusal in a prompt is no refusal)
    PROMPT = "prompt"  # only the user's last message (is the user upset)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str
    text: str
    score: float = 1.0


@dataclass
class SignalResult:
    score: float = 0.0
    spans: list[Span] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        spans = [
            {"start": s.start, "end": s.end, "label": s.label, "text": s.text, "score": s.score}
            for s in self.spans
        ]
        return {"score": self.score, "spans": spans, "values": self.values}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignalResult:
        return cls(
            score=float(data["score"]),
            spans=[Span(**span) for span in data["spans"]],
            values=dict(data["values"]),
        )


class Signal(ABC):
    """One signal. `version` is part of its cache key: bump it when results change.

    `reads` is what it computes on (PII spans are wanted in every dialogue turn, a prompt's
    language is worth knowing); `judges` is the text whose result sets the flag: the answer
    under review, so a rude or German question never marks a polite English answer.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    flag: ClassVar[str | None] = None
    reads: ClassVar[Reads] = Reads.ALL
    judges: ClassVar[Reads] = Reads.ANSWERS
    #: True when the spans are worth labelling as regions in Label Studio.
    labels_spans: ClassVar[bool] = False
    version: ClassVar[int] = 1

    @abstractmethod
    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        """One result per text, in order."""


SIGNALS: dict[str, type[Signal]] = {}
S = TypeVar("S", bound=type[Signal])


def register_signal(cls: S) -> S:
    """Class decorator: make a signal known by its name."""
    if cls.name in SIGNALS:
        raise ValueError(f"signal {cls.name!r} is registered twice")
    SIGNALS[cls.name] = cls
    return cls
