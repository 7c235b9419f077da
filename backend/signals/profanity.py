"""Profanity by word list: swearing is lexical, and a word list never misses the obvious.

The `profanity` concept (embeddings) catches disguised and contextual cases; this list makes
sure "What the fuck." is flagged even inside an insult whose meaning dominates its embedding.
Whole words only, so "Scunthorpe", "assess" and "class" stay clean.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracetune.backend.signals.base import Signal, SignalResult, Span, register_signal

_WORDS = (
    r"fuck\w*|f\*+k\w*|motherfuck\w*|shit\w*|bullshit\w*|horseshit|crap(?:py)?|damn(?:ed|it)?"
    r"|goddamn\w*|dammit|ass(?:hole)?s?|asshat|dumbass|jackass|half-assed|bastards?"
    r"|bitch\w*|dick(?:head)?s?|piss(?:ed)?|pissing|wtf|stfu|bloody hell|hell yeah"
    r"|screw (?:you|this|that)|badass|what the hell|the hell|cunt\w*|bollocks|wanker\w*"
    r"|shite|clusterfuck\w*|effing|frickin\w*"
)
PROFANITY = re.compile(rf"\b(?:{_WORDS})\b", re.IGNORECASE)


#: Where a listed word is the plain term: a female dog, a donkey, a dam of a litter.
_PLAIN_SENSE = re.compile(
    r"\b(?:dog|dogs|puppy|puppies|litter|breed|breeding|breeder|whelp\w*|in heat|season|"
    r"spay\w*|stud|donkey|donkeys|mule)\b",
    re.IGNORECASE,
)
_PLAIN_WORDS = frozenset({"bitch", "bitches", "ass", "asses"})


def _is_plain_sense(text: str, word: str) -> bool:
    return word.lower() in _PLAIN_WORDS and bool(_PLAIN_SENSE.search(text))


@register_signal
class ProfanitySignal(Signal):
    name = "profanity"
    description = "swear words (whole-word list)"
    flag = "profanity"
    version = 2  # 2: "screw it (in)" and a breeder's "bitch" are no swearing

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            spans = [
                Span(m.start(), m.end(), "PROFANITY", m.group(0))
                for m in PROFANITY.finditer(text)
                if not _is_plain_sense(text, m.group(0))
            ]
            results.append(SignalResult(score=0.9 if spans else 0.0, spans=spans))
        return results
