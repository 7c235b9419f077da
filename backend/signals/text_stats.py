"""Text statistics: characters, words, tokens (tiktoken) and Flesch reading ease.

No flag: the numbers go into the prediction's details, for sorting and export filters.
Syllables come from pyphen's hyphenation dictionary (hyphenation points + 1), the estimate
textstat falls back to; textstat itself needs NLTK's cmudict, which it downloads on first use
and so fails offline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import pyphen

from tracetune.backend.signals.base import Signal, SignalResult, register_signal
from tracetune.sync.token_count import token_counter

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")


@lru_cache(maxsize=1)
def _hyphenator() -> pyphen.Pyphen:
    return pyphen.Pyphen(lang="en_US")


def reading_ease(text: str) -> float | None:
    """Flesch reading ease: 206.835 - 1.015 words/sentence - 84.6 syllables/word."""
    words = _WORD.findall(text)
    if not words:
        return None
    sentences = max(1, len(_SENTENCE_END.findall(text)))
    syllables = sum(len(_hyphenator().positions(w.lower())) + 1 for w in words)
    return round(206.835 - 1.015 * len(words) / sentences - 84.6 * syllables / len(words), 1)


@register_signal
class TextStatsSignal(Signal):
    name = "text_stats"
    description = "length in characters, words and tokens; Flesch reading ease"

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        counter = token_counter()
        return [
            SignalResult(
                values={
                    "chars": len(text),
                    "words": len(_WORD.findall(text)),
                    "tokens": counter.count(text),
                    "reading_ease": reading_ease(text),
                }
            )
            for text in texts
        ]
