"""PII: e-mail, phone, credit card (Luhn), IP address, IBAN, national IDs and person names.

Patterns find candidates; validators (Luhn, IBAN mod-97, national-ID check digits from
python-stdnum, libphonenumber for phones) keep only plausible ones, so a long order number is
not a credit card. Person names come from a first-name list (gender-guesser's 40,000 names)
followed by a capitalised surname, or after an introduction ("my name is ..."); they score lower
because a gazetteer cannot read context.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import phonenumbers
from stdnum import iban, luhn
from stdnum.ca import sin
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.us import ssn

from tracetune.backend.signals.base import Signal, SignalResult, Span, register_signal

PHONE_REGIONS = ("US", "GB", "DE", "FR")
_DIGIT_RUN = re.compile(r"\d[\d\s().-]{5,}\d")

Validator = Callable[[str], bool]


def _card(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn.is_valid(digits)


def _ip(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    if address.version == 4:
        return candidate.count(".") == 3
    return len(candidate) >= 7  # "a::b" in C++ code is no address


def _nino(candidate: str) -> bool:
    compact = candidate.replace(" ", "").upper()
    return compact[:2] not in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def _any(*validators: Validator) -> Validator:
    def check(candidate: str) -> bool:
        return any(v(candidate) for v in validators)

    return check


#: (label, pattern, validator, score), highest priority first: an overlap keeps the first.
PATTERNS: list[tuple[str, re.Pattern[str], Validator | None, float]] = [
    ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
     None, 0.99),
    ("CREDIT_CARD", re.compile(r"\b(?:\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5}"
                               r"|\d{13,19})\b"), _card, 0.95),  # grouped as printed, or bare
    ("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
     iban.is_valid, 0.97),
    ("NATIONAL_ID", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), ssn.is_valid, 0.9),  # US SSN
    ("NATIONAL_ID",
     re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
     _nino, 0.85),  # UK National Insurance number
    ("NATIONAL_ID", re.compile(r"\b\d{3} \d{3} \d{4}\b"), nhs.is_valid, 0.8),  # UK NHS number
    ("NATIONAL_ID", re.compile(r"\b\d{3}[- ]\d{3}[- ]\d{3}\b"), sin.is_valid, 0.8),  # Canada SIN
    ("NATIONAL_ID", re.compile(r"\b\d{4} \d{4} \d{4}\b"), aadhaar.is_valid, 0.8),  # India
    ("NATIONAL_ID", re.compile(r"\b[XYZ\d]\d{7}-?[A-Z]\b"), _any(dni.is_valid, nie.is_valid),
     0.85),  # Spain DNI / NIE
    ("NATIONAL_ID", re.compile(r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b"),
     codicefiscale.is_valid, 0.9),  # Italy codice fiscale
    ("NATIONAL_ID", re.compile(r"\b[12] ?\d{2} ?\d{2} ?\d{2} ?\d{3} ?\d{3} ?\d{2}\b"),
     nir.is_valid, 0.9),  # France NIR
    ("IP_ADDRESS", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), _ip, 0.9),
    ("IP_ADDRESS", re.compile(r"(?<![\w:])(?=[:0-9A-Fa-f]*[0-9A-Fa-f])"
                              r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"), _ip, 0.85),
]  # fmt: skip

_TITLE_NAME = re.compile(
    r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.? (?P<name>[A-Z][a-z]+(?:[ -][A-Z][a-z]+)?)\b"
)
_INTRO_NAME = re.compile(
    r"\b(?:[Mm]y name is|[Ii] am|I'm|[Cc]all me|[Tt]his is|[Ss]igned,?|[Rr]egards,?)\s+"
    r"(?P<name>[A-Z][a-z]+(?: [A-Z][a-z]+)?)\b"
)
_FULL_NAME = re.compile(r"\b(?P<name>(?P<first>[A-Z][a-z]+) [A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b")
#: Capitalised words that do not make a person, before or after a first name ("May Day").
_NOT_NAME_WORDS = (
    "The And Or But If Then When While I You We They He She It This That These Those My Your "
    "Our Their His Her Its Monday Tuesday Wednesday Thursday Friday Saturday Sunday January "
    "February March April May June July August September October November December Street "
    "Road Avenue Lane University College School Inc Ltd Corp Company Bank Hotel Station "
    # first names that are everyday words at the start of a sentence ("Will this work?")
    "Will Bill Grant Art Chase Hope Faith Joy Page Max Ray Sunny Rich Gay Guy Pat Sue Bob "
    "Jack Mark Rose Iris Ivy Jade Amber Crystal Dawn Summer Autumn Winter Frank Earnest"
)
_NOT_NAMES = frozenset(_NOT_NAME_WORDS.split())


@lru_cache(maxsize=1)
def _first_names() -> Any:
    import gender_guesser.detector

    return gender_guesser.detector.Detector(case_sensitive=False)


def _is_first_name(word: str) -> bool:
    """A name the list gives a gender to ("andy", androgynous, holds oddities such as "In")."""
    return _first_names().get_gender(word) in {"male", "female", "mostly_male", "mostly_female"}


def _person_spans(text: str) -> Iterator[Span]:
    for match in _TITLE_NAME.finditer(text):
        yield Span(match.start(), match.end("name"), "PERSON", match.group(0), 0.8)
    for match in _INTRO_NAME.finditer(text):
        if _is_first_name(match.group("name").split()[0]):
            start, end = match.span("name")
            yield Span(start, end, "PERSON", match.group("name"), 0.75)
    for match in _FULL_NAME.finditer(text):
        surname = match.group("name").split()[1].split("-")[0]
        first = match.group("first")
        if surname not in _NOT_NAMES and first not in _NOT_NAMES and _is_first_name(first):
            start, end = match.span("name")
            yield Span(start, end, "PERSON", match.group("name"), 0.7)


def _phone_spans(text: str) -> Iterator[Span]:
    if not _DIGIT_RUN.search(text):
        return
    for region in PHONE_REGIONS:
        leniency = phonenumbers.Leniency.VALID
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency):
            yield Span(match.start, match.end, "PHONE", match.raw_string, 0.9)


def find_pii(text: str) -> list[Span]:
    """Non-overlapping PII spans, in text order."""
    candidates: list[Span] = []
    for label, pattern, validator, score in PATTERNS:
        for match in pattern.finditer(text):
            if validator is None or validator(match.group(0)):
                candidates.append(Span(match.start(), match.end(), label, match.group(0), score))
    candidates.extend(_phone_spans(text))
    candidates.extend(_person_spans(text))
    kept: list[Span] = []
    for span in candidates:  # already in priority order
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


@register_signal
class PiiSignal(Signal):
    name = "pii"
    description = "personal data: e-mail, phone, card, IP, IBAN, national ID, person name"
    flag = "pii"
    labels_spans = True
    version = 2  # 2: names need a gendered first name that is not an everyday word

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            spans = find_pii(text)
            results.append(
                SignalResult(
                    score=max((s.score for s in spans), default=0.0),
                    spans=spans,
                    values={"types": sorted({s.label for s in spans})},
                )
            )
        return results
