"""Sentences of an answer or a context passage, with their character offsets.

Groundedness is judged per sentence, and unsupported sentences are marked as regions in the
answer Label Studio shows, so a sentence keeps its exact offsets. Splitting is rule-based:
a sentence ends at `.`, `!` or `?` followed by a space and an upper-case letter, a digit or
a quote, or at a line break; abbreviations ("e.g.", "Dr."), decimals and version numbers do
not end one. List items and lines of a Markdown answer are sentences of their own.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

#: Words that end with a dot without ending the sentence.
_ABBREVIATION_TEXT = "e.g i.e etc vs approx incl no nr dr mr mrs ms prof st mt ca cf fig al jr sr"
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9])|\n+")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_LIST_NUMBER = re.compile(r"\s*\d+$")


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    text: str


def _ends_abbreviation(text: str, dot: int) -> bool:
    word = re.search(r"([A-Za-z.]+)$", text[:dot])
    return word is not None and word.group(1).lower().rstrip(".") in _ABBREVIATIONS


def split_sentences(text: str) -> list[Sentence]:
    """Non-empty sentences of `text`, stripped, with `text[start:end] == sentence.text`."""
    cuts = [0]
    for match in _END.finditer(text):
        if match.group().startswith(".") and (
            _ends_abbreviation(text, match.start())
            or _LIST_NUMBER.match(text, cuts[-1], match.start())
        ):
            continue
        cuts.append(match.end())
    cuts.append(len(text))
    sentences = []
    for start, end in itertools.pairwise(cuts):
        chunk = text[start:end]
        bullet = _BULLET.match(chunk)
        offset = bullet.end() if bullet else len(chunk) - len(chunk.lstrip())
        body = chunk[offset:].rstrip()
        if body:
            sentences.append(Sentence(start + offset, start + offset + len(body), body))
    return sentences
