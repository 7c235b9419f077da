"""Whose data is it? Business contact details and placeholders are not a private person's PII.

An answer that gives a clinic's phone line, an airline's support address or a council office's
street address is doing its job; one that repeats a customer's mobile number or home address
is not training data. Nothing in the value itself tells them apart, so the words around it
decide: a role mailbox (`support@`, `bookings@`), a toll-free number, "our office", "call the
helpline" mark a business; "your mobile", "my address", "lives at" a private person. Without
either, a value counts as private: missing a real phone number costs more than one untick.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: Mailboxes of a role, not of a person.
_ROLE_WORDS = (
    "support help helpdesk info information contact contacts hello hi sales billing accounts "
    "accounting invoices admin office team service services customerservice customercare care "
    "enquiries enquiry inquiries bookings booking reservations reception frontdesk press media "
    "careers jobs hr privacy dpo gdpr security abuse legal compliance noreply no-reply "
    "donotreply do-not-reply notifications alerts feedback claims complaints orders returns "
    "shop store partners marketing newsletter webmaster postmaster events tickets appointments "
    "clinic practice surgery emergency mail general enquiries-uk kontakt service-client "
    "servizio atencion ayuda"
)
ROLE_MAILBOXES = frozenset(_ROLE_WORDS.split())
#: Local parts that stand for "your address here" in instructions.
_PLACEHOLDER_WORDS = (
    "you your.name yourname your_name your-email youremail name user username email someone "
    "firstname.lastname first.last firstname lastname"
)
PLACEHOLDER_MAILBOXES = frozenset(_PLACEHOLDER_WORDS.split())
_BUSINESS_WORDS = re.compile(
    r"\b(?:support|help ?desk|helpline|hotline|customer (?:service|care|support|team)|"
    r"service (?:desk|line|centre|center)|our (?:team|office|offices|clinic|store|shop|branch|"
    r"desk|line|number|headquarters|hq|address)|office|offices|clinic|practice|surgery|hospital|"
    r"pharmacy|reception|front desk|switchboard|call centre|call center|head ?office|"
    r"headquarters|branch|store|shop|showroom|depot|council|town hall|city hall|embassy|"
    r"consulate|station|airport|terminal|hotel|museum|library|restaurant|department|dept|"
    r"toll[- ]free|freephone|free ?phone|24/7|opening hours|open (?:from|monday|mon)|"
    r"mon(?:day)?\s*[-\u2013]\s*fri(?:day)?|weekdays|enquiries|bookings|reservations|"
    r"claims (?:line|team)|"
    r"emergency line|out[- ]of[- ]hours|call us|contact us|reach us|write to us|visit us|"
    r"ltd|limited|gmbh|inc|llc|plc|s\.?a\.?r?\.?l?|s\.?p\.?a|b\.?v|"
    # an answer telling the user whom to call: "call 0300 ...", "ring the advice line on"
    r"(?:call|ring|phone|dial|contact|reach)(?: us| our| the| them)?\b|line|hub|team|desk|"
    # the same in the languages answers come in
    r"ll[áa]menos|llame|l[íi]nea|servicio|atenci[óo]n al cliente|chiami|chiamare|linea|"
    r"numero verde|servizio clienti|appelez(?:-nous)?|service client|rufen sie|kundenservice)\b",
    re.IGNORECASE,
)
_PRIVATE_WORDS = re.compile(
    r"\b(?:my|your|his|her|their) (?:own |personal |private |home |mobile |cell |work )?"
    r"(?:number|phone|mobile|cell|e-?mail|address|home|flat|apartment|house|details)\b|"
    r"\b(?:personal|private|home) (?:number|phone|e-?mail|address)\b|"
    r"\b(?:lives|living|live) at\b|\breach (?:me|him|her)\b|\btext (?:me|him|her)\b|"
    r"\b(?:mobile|cell)(?: phone| number)?\s*(?:is|:)?\s*$|\b(?:his|her|him)\b|"
    r"\b(?:call|text|ring|phone|email|e-mail|reach) (?:you|him|her|them|me)\b|"
    r"\b(?:Mr|Mrs|Ms|Miss|Dr)\.? [A-Z][a-z]+",
)
#: Toll-free and shared-cost prefixes: numbers only a business has.
_TOLL_FREE = re.compile(
    r"^(?:\+?1[\s.-]?\(?8(?:00|33|44|55|66|77|88)\)?|\+?44\s?\(?0?\)?\s?(?:800|808|3\d\d)|"
    r"0800|0808|03\d\d|\+?33\s?\(?0?\)?\s?80\d|080\d|\+?49\s?\(?0?\)?\s?800|"
    r"\+?39\s?800|\+?34\s?900|900|\+?31\s?\(?0?\)?\s?800|1800|1850)"
)
WINDOW_BEFORE = 60
WINDOW_AFTER = 25


def _around(text: str, start: int, end: int) -> tuple[str, str]:
    """The words just before and just after a value, within its sentence."""
    before = text[max(0, start - WINDOW_BEFORE) : start]
    before = re.split(r"[.!?\n]\s", before)[-1]
    after = text[end : end + WINDOW_AFTER]
    after = re.split(r"[.!?\n]", after)[0]
    return before, after


#: Mail providers people use for themselves.
PERSONAL_MAIL = re.compile(
    r"@(?:gmail|googlemail|yahoo|ymail|hotmail|outlook|live|msn|icloud|me|mac|aol|gmx|web|"
    r"t-online|freenet|orange|free|laposte|sfr|wanadoo|libero|virgilio|tiscali|alice|proton|"
    r"protonmail|pm|yandex|mail|btinternet|sky|virginmedia|talktalk|wp|o2|onet|interia|seznam|"
    r"telenet|skynet|ziggo|kpnmail|hetnet|bluewin|tutanota|fastmail|zoho)\.",
    re.IGNORECASE,
)
_INITIAL_SURNAME = re.compile(r"^[a-z][._-]?[a-z]{3,}\d*$|^[a-z]+[._-][a-z]+\d*$")


def email_owner(address: str, is_first_name: Callable[[str], bool]) -> str:
    """'business', 'placeholder' or 'private' for an e-mail address.

    A role mailbox is a business's; a personal mail provider, a first name in the local part
    ("marta.kowalczyk84", "jo.blake") or an initial and surname is a person's; any other
    mailbox at an organisation's domain ("lostproperty@...") is the organisation's.
    """
    local = address.split("@", 1)[0].lower()
    if local in PLACEHOLDER_MAILBOXES:
        return "placeholder"
    parts = [p for p in re.split(r"[._+-]|\d+", local) if p]
    if local in ROLE_MAILBOXES or (parts and parts[0] in ROLE_MAILBOXES):
        return "business"
    if PERSONAL_MAIL.search(address) or any(is_first_name(p) for p in parts if len(p) > 2):
        return "private"
    return "private" if "." in local and _INITIAL_SURNAME.match(local) else "business"


def phone_owner(text: str, start: int, end: int) -> str:
    """'business' or 'private' for a phone number at text[start:end]."""
    if _TOLL_FREE.match(text[start:end].strip()):
        return "business"
    return context_owner(text, start, end)


def context_owner(text: str, start: int, end: int) -> str:
    """'business' when the words around say so and nothing says it is a person's."""
    before, after = _around(text, start, end)
    if _PRIVATE_WORDS.search(before) or _PRIVATE_WORDS.search(after):
        return "private"
    if _BUSINESS_WORDS.search(before) or _BUSINESS_WORDS.search(after):
        return "business"
    return "private"
