"""PII: e-mail, phone, card (Luhn), IP address, IBAN, national IDs, street addresses, dates of
birth and person names, each judged private or not.

Patterns find candidates; validators (Luhn, IBAN mod-97, national-ID check digits from
python-stdnum, libphonenumber for phones in 15 European and North American numbering plans)
keep only plausible ones, so a long order number is not a credit card. National IDs that are
bare digit strings (Dutch BSN, Swedish personnummer, Polish PESEL...) also need their name
nearby, since any nine digits pass an 11-check one time in eleven. `pii_context` then sets
apart a business's contact details and placeholders, which are reported as values but are not
PII spans. Person names come from a first-name list (gender-guesser's 40,000 names); a bare
"First Last" scores below the flag's threshold because a gazetteer cannot tell a customer from
a cookbook author, while a name the answer greets or introduces counts fully.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import phonenumbers
from stdnum import iban, luhn
from stdnum.be import nn
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.dk import cpr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.ie import pps
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.se import personnummer
from stdnum.us import ssn

from tracetune.backend.signals.base import Signal, SignalResult, Span, register_signal
from tracetune.backend.signals.pii_context import context_owner, email_owner, phone_owner

PHONE_REGIONS = (
    "US", "GB", "DE", "FR", "IT", "ES", "NL", "BE", "AT", "CH", "IE", "PL", "PT", "SE", "DK",
)  # fmt: skip
_DIGIT_RUN = re.compile(r"\d[\d\s().-]{5,}\d")
#: Digit groups libphonenumber accepts in some plan that are a date or a dotted quad.
_DATE_LIKE = re.compile(
    r"^(?:\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{1,3}(?:\.\d{1,3}){3})$"
)
#: Words before a number that make it a reference, not a phone ("booking ref 0203 4471 882").
_REFERENCE_BEFORE = re.compile(
    r"\b(?:order|invoice|ref|reference|policy|booking|confirmation|tracking|ticket|claim|case|"
    r"account|acct|serial|member(?:ship)?|customer|flight|pnr|receipt|transaction|parcel|"
    r"registration|licen[cs]e|chip|microchip|permit)\b\W{0,4}(?:no\.?|number|#|id)?"
    r"\W{0,3}$",
    re.IGNORECASE,
)

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
     re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][ -]?\d{2}[ -]?\d{2}[ -]?\d{2}[ -]?[A-D]\b"),
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

#: National IDs that are bare digits: (pattern, validator, words that must come just before).
NAMED_IDS: list[tuple[re.Pattern[str], Validator, re.Pattern[str]]] = [
    (re.compile(r"\b\d{4}[ .]?\d{2}[ .]?\d{3}\b|\b\d{9}\b"), bsn.is_valid,
     re.compile(r"\b(?:BSN|burgerservicenummer|citizen service number)\b", re.I)),
    (re.compile(r"\b\d{2} ?\d{3} ?\d{3} ?\d{3}\b"), idnr.is_valid,
     re.compile(r"\b(?:steuer-?id|steuerliche identifikationsnummer|idnr|tax id)\b", re.I)),
    (re.compile(r"\b\d{11}\b"), pesel.is_valid, re.compile(r"\bPESEL\b", re.I)),
    (re.compile(r"\b(?:\d{2})?\d{6}[-+]?\d{4}\b"), personnummer.is_valid,
     re.compile(r"\bpersonnummer\b|\bpersonal identity number\b", re.I)),
    (re.compile(r"\b\d{7}[A-W][AHW]?\b"), pps.is_valid,
     re.compile(r"\bPPS(?:N| number)?\b", re.I)),
    (re.compile(r"\b\d{2}[.]?\d{2}[.]?\d{2}[-. ]?\d{3}[.]?\d{2}\b"), nn.is_valid,
     re.compile(r"\b(?:national (?:register|registry) number|rijksregisternummer|"
                r"num[ée]ro national)\b", re.I)),
    (re.compile(r"\b\d{6}-?\d{4}\b"), cpr.is_valid, re.compile(r"\bCPR\b", re.I)),
    (re.compile(r"\b\d{3}[ -]?\d{2}[ -]?\d{4}\b"), ssn.is_valid,
     re.compile(r"\b(?:SSN|social security(?: number)?)\b", re.I)),
]  # fmt: skip
NAMED_ID_WINDOW = 40

_STREET_DE = r"(?:stra(?:ß|ss)e|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee)"
_STREET_NL = r"(?:straat|laan|weg|plein|gracht|kade|dijk|singel|steenweg|dreef)"
_STREET_EN = (
    r"(?:Street|St|Road|Rd|Lane|Ln|Avenue|Ave|Close|Drive|Dr|Way|Gardens|Crescent|Place|Pl|"
    r"Court|Ct|Terrace|Grove|Hill|Row|Mews|Square|Walk|Boulevard|Blvd|Parkway|Pkwy)\.?"
)
_CITY = r"[A-ZÀ-Ý][\w'\u2019-]+(?: [A-ZÀ-Ý][\w'\u2019-]+){0,2}"
#: Street addresses as each country writes them: street, number, postcode, town.
ADDRESSES = [
    # Germany, Austria, Switzerland: "Lindenstraße 12, 10115 Berlin", "Berliner Str. 3a"
    rf"(?:[A-ZÄÖÜ][\wäöüß-]+ )?[A-ZÄÖÜ][\wäöüß-]*{_STREET_DE}\s+\d{{1,4}}[a-z]?"
    rf"(?:\s*[-/]\s*\d{{1,4}}[a-z]?)?,?\s+(?:[DAC]H?-)?\d{{4,5}}\s+{_CITY}",
    # Netherlands, Belgium (Flemish): "Keizersgracht 123, 1015 CJ Amsterdam"
    rf"[A-Z][\w-]*{_STREET_NL}\s+\d{{1,4}}[a-zA-Z]?(?:-\d+)?,?\s+\d{{4}}(?:\s?[A-Z]{{2}})?\s+{_CITY}",
    # France, Belgium (French): "12 rue de la Paix, 75002 Paris"
    r"\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|place|chemin|impasse|all[ée]e|"
    rf"quai|route|cours|passage)\s+[^,\n]{{2,40}},\s*\d{{4,5}}\s+{_CITY}",
    # Italy: "Via Roma 5, 00184 Roma"
    r"(?:Via|Viale|Piazza|Corso|Largo|Vicolo|Piazzale)\s+[^,\n\d]{2,40}\s*,?\s*\d{1,4}[a-zA-Z]?"
    rf",\s*(?:I-)?\d{{5}}\s+{_CITY}",
    # Spain, Portugal: "Calle Mayor 10, 3º B, 28013 Madrid", "Rua Augusta 100, 1100-053 Lisboa"
    r"(?:Calle|C/|Avenida|Avda\.|Plaza|Paseo|Carrer|Camino|Ronda|Rua|Travessa|Largo)\s+[^,\n\d]{2,40}"
    rf",?\s*(?:n[ºo°.]\s*)?\d{{1,4}}[^,\n]{{0,15}},\s*\d{{4,5}}(?:-\d{{3}})?\s+{_CITY}",
    # United Kingdom, with its postcode: "221B Baker Street, London NW1 6XE"
    rf"\d{{1,4}}[A-Za-z]?,?\s+(?:[A-Z][a-z]+\s){{1,3}}{_STREET_EN}\b[^\n]{{0,40}}?"
    r"\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b",
    # United States, Canada: "1600 Elm Street, Apt 4, Springfield, IL 62704"
    rf"\d{{1,6}}\s+(?:[NSEW]\.?\s)?(?:[A-Z][a-z]+\s){{1,3}}{_STREET_EN}"
    r"(?:,?\s+(?:Apt|Suite|Ste|Unit|#)\.?\s*\w+)?,\s*[A-Z][a-zA-Z]+(?: [A-Z][a-zA-Z]+)?,?\s*"
    r"[A-Z]{2}\s+(?:\d{5}(?:-\d{4})?|[A-Z]\d[A-Z] ?\d[A-Z]\d)",
]  # fmt: skip
#: Any country, when the text says whose address it is: "I live at 14 Elm Road".
SAID_ADDRESS = re.compile(
    r"\b(?:live at|lives at|living at|address is|address:|send it to|ship to|deliver to)\s+"
    rf"(?P<address>\d{{1,4}}[A-Za-z]?\s+(?:[A-Z][a-z]+\s){{0,2}}(?:{_STREET_EN}|[A-Z][a-z]+))",
    re.IGNORECASE,
)
ADDRESS = re.compile("|".join(f"(?:{a})" for a in ADDRESSES))
_DATE = (
    r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}(?:st|nd|rd|th)? [A-Z][a-z]+,? \d{4}"
    r"|[A-Z][a-z]+ \d{1,2}(?:st|nd|rd|th)?,? \d{4}"
)
DATE_OF_BIRTH = re.compile(
    r"\b(?:date of birth|birth ?date|DOB|D\.O\.B\.|born(?: on)?)\s*(?:is|:|-)?\s*"
    rf"(?P<date>{_DATE})",
    re.IGNORECASE,
)

_TITLE_NAME = re.compile(
    r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.? (?P<name>[A-Z][a-z]+(?:[ -][A-Z][a-z]+)?)\b"
)
_INTRO_NAME = re.compile(
    r"\b(?:[Mm]y name is|[Ii] am|I'm|[Cc]all me|[Tt]his is|[Ss]igned,?|[Rr]egards,?)\s+"
    r"(?P<name>[A-Z][a-z]+(?: [A-Z][a-z]+)?)\b"
)
#: An answer greeting the customer by name ("Hi Maria,", "Dear Mr Okafor").
_GREETING_NAME = re.compile(
    r"(?:^|\n)\s*(?:Dear|Hi|Hello|Hey|Good (?:morning|afternoon|evening))\s+"
    r"(?:(?:Mr|Mrs|Ms|Miss|Dr)\.? )?(?P<name>[A-Z][a-z]+(?: [A-Z][a-z]+)?)\s*[,!]"
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


#: Score of a name found by the list alone: highlighted, but below the flag's 0.5.
BARE_NAME_SCORE = 0.45


def _person_spans(text: str) -> Iterator[Span]:
    for pattern in (_GREETING_NAME, _INTRO_NAME):
        for match in pattern.finditer(text):
            if _is_first_name(match.group("name").split()[0]):
                start, end = match.span("name")
                yield Span(start, end, "PERSON", match.group("name"), 0.75)
    for match in _TITLE_NAME.finditer(text):
        yield Span(match.start(), match.end("name"), "PERSON", match.group(0), BARE_NAME_SCORE)
    for match in _FULL_NAME.finditer(text):
        surname = match.group("name").split()[1].split("-")[0]
        first = match.group("first")
        if surname not in _NOT_NAMES and first not in _NOT_NAMES and _is_first_name(first):
            start, end = match.span("name")
            yield Span(start, end, "PERSON", match.group("name"), BARE_NAME_SCORE)


def _named_id_spans(text: str) -> Iterator[Span]:
    for pattern, validator, name in NAMED_IDS:
        for match in pattern.finditer(text):
            before = text[max(0, match.start() - NAMED_ID_WINDOW) : match.start()]
            if name.search(before) and validator(match.group(0)):
                yield Span(match.start(), match.end(), "NATIONAL_ID", match.group(0), 0.85)


def _address_spans(text: str) -> Iterator[Span]:
    for match in ADDRESS.finditer(text):
        yield Span(match.start(), match.end(), "ADDRESS", match.group(0), 0.8)
    for match in SAID_ADDRESS.finditer(text):
        start, end = match.span("address")
        yield Span(start, end, "ADDRESS", match.group("address"), 0.8)
    for match in DATE_OF_BIRTH.finditer(text):
        start, end = match.span("date")
        yield Span(start, end, "DATE_OF_BIRTH", match.group("date"), 0.85)


def _phone_spans(text: str) -> Iterator[Span]:
    if not _DIGIT_RUN.search(text):
        return
    for region in PHONE_REGIONS:
        leniency = phonenumbers.Leniency.VALID
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency):
            if _REFERENCE_BEFORE.search(text[max(0, match.start - 30) : match.start]):
                continue
            if _DATE_LIKE.match(match.raw_string):
                continue
            yield Span(match.start, match.end, "PHONE", match.raw_string, 0.9)


def _candidates(text: str) -> list[Span]:
    """Every candidate, highest priority first: an overlap keeps the first."""
    candidates: list[Span] = []
    for label, pattern, validator, score in PATTERNS:
        for match in pattern.finditer(text):
            if validator is None or validator(match.group(0)):
                candidates.append(Span(match.start(), match.end(), label, match.group(0), score))
    candidates.extend(_named_id_spans(text))
    candidates.extend(_address_spans(text))
    candidates.extend(_phone_spans(text))
    candidates.extend(_person_spans(text))
    kept: list[Span] = []
    for span in candidates:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def owner(text: str, span: Span) -> str:
    """'private', 'business' or 'placeholder': whose data a span is (see `pii_context`)."""
    if span.label == "EMAIL":
        return email_owner(span.text, _is_first_name)
    if span.label == "PHONE":
        return phone_owner(text, span.start, span.end)
    if span.label == "ADDRESS":
        return context_owner(text, span.start, span.end)
    return "private"


def find_pii(text: str) -> list[Span]:
    """A private person's PII spans, non-overlapping, in text order."""
    return [s for s in _candidates(text) if owner(text, s) == "private"]


def find_contacts(text: str) -> list[Span]:
    """Business contact details and placeholders: found, but not PII."""
    return [s for s in _candidates(text) if owner(text, s) != "private"]


@register_signal
class PiiSignal(Signal):
    name = "pii"
    description = (
        "a private person's data: e-mail, phone, card, IP, IBAN, national ID, address, "
        "date of birth, name (business contacts and placeholders apart)"
    )
    flag = "pii"
    labels_spans = True
    #: 2: names need a gendered first name that is not an everyday word; 3: business contacts
    #: and placeholders apart, addresses, dates of birth, more countries' phones and IDs
    version = 3

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            found = _candidates(text)
            spans = [s for s in found if owner(text, s) == "private"]
            contacts = [
                {"label": s.label, "text": s.text, "owner": owner(text, s)}
                for s in found
                if owner(text, s) != "private"
            ]
            results.append(
                SignalResult(
                    score=max((s.score for s in spans), default=0.0),
                    spans=spans,
                    values={"types": sorted({s.label for s in spans}), "contacts": contacts},
                )
            )
        return results
