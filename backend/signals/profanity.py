"""Profanity: a word list, and alt-profanity-check's model sentence by sentence.

Swearing is lexical, so a list never misses the obvious ("What the fuck.") even inside an
answer whose meaning, and so whose embedding, is about something else. alt-profanity-check
(MIT; a linear SVM over word n-grams trained on offensive-language data and shipped inside the
wheel, so it runs offline) catches spellings and words the list lacks. It is asked about each
sentence rather than the whole answer: a long, helpful answer dilutes one swear word below any
threshold. Its threshold is high because it also scores words such as "dumb" or "cancer"
fairly high; a sentence where a listed word is the plain term (a breeder's "bitch", a donkey's
"ass") is never counted, whichever route found it. Whole words only, so "Scunthorpe",
"assess" and "class" stay clean.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from tracetune.backend.signals.base import Signal, SignalResult, Span, register_signal

_WORDS = (
    r"fuck\w*|f\*+k\w*|motherfuck\w*|shit\w*|bullshit\w*|horseshit|crap(?:py)?|damn(?:ed|it)?"
    r"|goddamn\w*|dammit|ass(?:hole)?s?|asshat|dumbass|jackass|half-assed|bastards?"
    r"|bitch\w*|dickheads?|piss(?:ed)?|pissing|wtf|stfu|bloody hell|hell yeah|hell no"
    r"|(?:oh|holy) hell|hell of an?|hell's bells|screw (?:you|this|that)|badass|what the hell"
    r"|the hell|cunt\w*"
    r"|bollocks|wanker\w*|shite|clusterfuck\w*|effing|frick\w*|frigg\w*|arse(?:holes?|d)?"
    r"|bugger(?:ed)?|sod (?:it|off|this|that)|sodding|twats?|goddamm?it|jesus christ"
    r"|christ almighty"
    r"|(?:those|these|you|what a|such a|a real|a total) pricks?"
)
PROFANITY = re.compile(rf"\b(?:{_WORDS})\b", re.IGNORECASE)
#: Case matters: "Dick Turpin" is a name, "being a dick" is not.
_LOWER_CASE_ONLY = re.compile(r"\bdicks?\b")
#: "Hell," and "Christ," opening a sentence are exclamations; elsewhere they are places.
_EXCLAMATION = re.compile(r"(?:^|(?<=[.!?]\s))(?:Hell|Christ)(?=,)")
#: "bloody" swears, except before the nouns where it describes blood.
_BLOODY = re.compile(
    r"\bbloody\b(?! (?:nose|noses|stools?|diarrh\w*|urine|discharge|mucus|vomit|wounds?"
    r"|mary|marys|sunday|tissue|bandage|mess of the wound))",
    re.IGNORECASE,
)

#: Where a listed word is the plain term: a female dog, a donkey, a dam of a litter.
_PLAIN_SENSE = re.compile(
    r"\b(?:dog|dogs|puppy|puppies|litter|breed|breeding|breeder|whelp\w*|in heat|season|"
    r"spay\w*|stud|donkey|donkeys|mule|mules|fable)\b",
    re.IGNORECASE,
)
_PLAIN_WORDS = frozenset({"bitch", "bitches", "ass", "asses"})
_PLAIN_WORD = re.compile(r"\b(?:bitch|bitches|ass|asses)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
#: alt-profanity-check's probability at which a sentence counts as profane.
MODEL_THRESHOLD = 0.95


def _is_plain_sense(text: str, word: str) -> bool:
    return word.lower() in _PLAIN_WORDS and bool(_PLAIN_SENSE.search(text))


def _listed(text: str) -> list[Span]:
    found = [
        *PROFANITY.finditer(text),
        *_LOWER_CASE_ONLY.finditer(text),
        *_BLOODY.finditer(text),
        *_EXCLAMATION.finditer(text),
    ]
    spans = {
        (m.start(), m.end()): Span(m.start(), m.end(), "PROFANITY", m.group(0))
        for m in found
        if not _is_plain_sense(text, m.group(0))
    }
    return sorted(spans.values(), key=lambda s: s.start)


@lru_cache(maxsize=1)
def _model() -> Any:
    """alt-profanity-check's `predict_prob`, imported once (it unpickles the model)."""
    from profanity_check import predict_prob

    return predict_prob


def _sentences(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group(0).strip()]


@register_signal
class ProfanitySignal(Signal):
    name = "profanity"
    description = "swear words: a whole-word list, and alt-profanity-check per sentence"
    flag = "profanity"
    version = 3  # 3: alt-profanity-check per sentence; British swearing; "Dick" as a name

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        bounds = [_sentences(text) for text in texts]
        sentences = [text[a:b] for text, spans in zip(texts, bounds, strict=True) for a, b in spans]
        probabilities = iter(_model()(sentences).tolist() if sentences else [])
        results = []
        for text, spans in zip(texts, bounds, strict=True):
            listed = _listed(text)
            flagged: list[Span] = []
            best = 0.0
            for (start, end), probability in zip(spans, probabilities, strict=False):
                sentence = text[start:end]
                plain = bool(_PLAIN_WORD.search(sentence) and _PLAIN_SENSE.search(text))
                if probability >= MODEL_THRESHOLD and not plain:
                    best = max(best, probability)
                    if not any(start <= s.start < end for s in listed):
                        flagged.append(Span(start, end, "PROFANITY", sentence, probability))
            score = 0.9 if listed else 0.0
            results.append(
                SignalResult(
                    score=round(max(score, best * 0.9), 4),
                    spans=sorted([*listed, *flagged], key=lambda s: s.start),
                )
            )
        return results
