"""Secrets and API keys in traces: detect-secrets' plugins, current key formats, and passwords
written out in prose.

The plugins run line by line without detect-secrets' "eager" ad hoc mode, which flags every
word of prose; its heuristic filters (sequential strings, UUIDs, templates, `$VAR`, ids) then
drop the usual false positives. detect-secrets reports a value, sometimes only a token's
prefix, so each span is widened to the whole token it sits in. Key formats newer than the
plugins (OpenAI project keys, GitHub fine-grained tokens, LangSmith, Hugging Face...) are
matched by pattern. A support answer rarely writes `password = "..."`: it says "your
temporary password is Tr0ub4dor-88", which a pattern for the phrase finds.

What is not a secret: a placeholder (`sk-...`, `YOUR_API_KEY`, `<token>`, `xxxx`, `****`,
AWS's documented `...EXAMPLE` key) and a hash or checksum (a hex string on a line that says
sha256, checksum, commit...), which the entropy plugins would otherwise report.

detect-secrets is imported, and its plugins built, when this module is imported: the server
imports every signal before it serves. Imported lazily inside a request instead, a first call
that failed half-way (a recursion limit hit by a deep request, two threads importing at once)
left its circular modules partially initialised, and every later request of that worker failed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters import heuristic
from detect_secrets.util.code_snippet import get_code_snippet

from tracetune.backend.signals.base import Signal, SignalResult, Span, register_signal

KEY_PATTERNS = re.compile(
    r"\b(?:sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d\d-)?[A-Za-z0-9_-]{32,}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"
    r"|lsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10}|hf_[A-Za-z0-9]{30,}"
    r"|AIza[0-9A-Za-z_-]{35}|xox[abprs]-[A-Za-z0-9-]{10,})"
)
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_\-+/=]")
PLACEHOLDER = re.compile(
    r"x{4,}|\.{3}|\u2026|\*{3,}|\u2022{3,}|[<>{}\[\]]|your[_-]?|example|placeholder|redacted|"
    r"dummy|sample|changeme|replace[_-]?me|insert|secret[_-]?here|key[_-]?here|token[_-]?here|"
    r"^(?:sk|pk|api|key|token)[-_]?$|0{8,}|1234567|abcdef",
    re.IGNORECASE,
)
_HEX = re.compile(r"^[0-9a-fA-F]{7,128}$")
_HASH_WORDS = re.compile(
    r"\b(?:sha-?\d*|md5|hash|hashes|checksum|digest|commit|revision|rev|fingerprint|etag|sum|"
    r"integrity|build|version|uuid|guid|id)\b",
    re.IGNORECASE,
)
_SECRET_WORDS = re.compile(
    r"(?:key|token|secret|password|passwd|pwd|credential|auth|bearer)", re.IGNORECASE
)
#: "the password is Tr0ub4dor-88", "Wi-Fi password: sunflower42", "PIN: 4821".
PROSE_PASSWORD = re.compile(
    r"\b(?:(?:one-time |temporary )?pass(?:word|code|phrase)|pwd|OTP|PIN(?: code| number)?|"
    r"wi-?fi (?:key|code)|(?:access|door|alarm|gate|entry|kiosk|lockbox|key ?safe) code)s?\b"
    r"(?: for [\w .()'-]{1,60}?)?"
    r"\s*(?:(?:has been|was|is|been)\s+)?"
    r"(?:(?:set|reset|changed|updated)\s+to|is|was|will be|uses|:|=)\s*"
    r"[\"'\u201c\u2018`]?(?P<value>[^\s\"'\u201d\u2019`]{4,64}?)[\"'\u201d\u2019`]?(?=[\s,;)]|[.!?](?:\s|$)|$)",
    re.IGNORECASE,
)
#: "password Q7!mTr4zPw9": no verb, but a value no sentence has (letters and digits).
BARE_PASSWORD = re.compile(
    r"\b(?:(?:one-time |temporary )?password|passcode|OTP|PIN)\s+"
    r"(?P<value>(?=\S*\d)(?=\S*[A-Za-z])[^\s,;.\"'`]{6,64})",
    re.IGNORECASE,
)
#: Words that follow "password is" in instructions, never a password themselves.
_NOT_PASSWORD_WORDS = (
    "case-sensitive required optional incorrect wrong correct invalid valid expired same "
    "different shown hidden sent stored hashed encrypted reset changed updated needed "
    "missing below above longer shorter strong weak secure simple visible printed written "
    "attached there here empty blank saved your their the this that what"
)
_NOT_PASSWORDS = frozenset(_NOT_PASSWORD_WORDS.split())


def _build_plugins() -> list[Any]:
    """Every detect-secrets plugin but the public-IP one (IPs are reported as PII)."""
    limits = {"Base64HighEntropyString": 4.5, "HexHighEntropyString": 3.0}
    plugins = []
    plugin_class: Any
    for plugin_class in get_mapping_from_secret_type_to_class().values():
        name = plugin_class.__name__
        if name == "IPPublicDetector":
            continue
        plugins.append(plugin_class(limit=limits[name]) if name in limits else plugin_class())
    return plugins


_PLUGINS = _build_plugins()


def _filtered_out(secret: str, line: str, plugin: Any) -> bool:
    return (
        heuristic.is_sequential_string(secret)
        or heuristic.is_potential_uuid(secret)
        or heuristic.is_templated_secret(secret)
        or heuristic.is_prefixed_with_dollar_sign(secret)
        or heuristic.is_likely_id_string(secret, line, plugin)
    )


def _widen(line: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _TOKEN_CHAR.match(line[start - 1]):
        start -= 1
    while end < len(line) and _TOKEN_CHAR.match(line[end]):
        end += 1
    return start, end


def is_placeholder(value: str) -> bool:
    """A stand-in for a secret in instructions, not one."""
    return bool(PLACEHOLDER.search(value)) or len(set(value.lower())) <= 2


def _is_hash(value: str, line: str) -> bool:
    """A hex string is a hash unless the line calls it a key, token or secret."""
    if not _HEX.match(value):
        return False
    return bool(_HASH_WORDS.search(line)) or not _SECRET_WORDS.search(line)


def _prose_password(value: str) -> bool:
    """Whether what follows "password is" looks like one: not a word of the instructions,
    and with a digit or a symbol in it (a PIN is all digits)."""
    if value.lower() in _NOT_PASSWORDS or is_placeholder(value):
        return False
    return any(c.isdigit() for c in value) or any(not c.isalnum() for c in value)


def _line_spans(line: str) -> list[tuple[int, int]]:
    found = [m.span() for m in KEY_PATTERNS.finditer(line) if not is_placeholder(m.group(0))]
    for pattern in (PROSE_PASSWORD, BARE_PASSWORD):
        found += [m.span("value") for m in pattern.finditer(line) if _prose_password(m["value"])]
    context = get_code_snippet(lines=[line], line_number=1)
    for plugin in _PLUGINS:
        for secret in plugin.analyze_line(
            filename="trace.txt", line=line, line_number=1, context=context
        ):
            value = secret.secret_value or ""
            position = line.find(value) if value else -1
            if position < 0 or _filtered_out(value, line, plugin):
                continue
            start, end = _widen(line, position, position + len(value))
            token = line[start:end]
            if not is_placeholder(token) and not _is_hash(token, line):
                found.append((start, end))
    return found


def find_secrets(text: str) -> list[Span]:
    """Non-overlapping secret spans (the longest wins), in text order."""
    candidates: list[tuple[int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        candidates.extend((offset + s, offset + e) for s, e in _line_spans(line))
        offset += len(line)
    kept: list[tuple[int, int]] = []
    for start, end in sorted(candidates, key=lambda se: se[0] - se[1]):
        if all(end <= s or start >= e for s, e in kept):
            kept.append((start, end))
    return [Span(s, e, "SECRET", text[s:e], 0.9) for s, e in sorted(kept)]


@register_signal
class SecretsSignal(Signal):
    name = "secrets"
    description = "API keys, tokens, private keys and passwords (detect-secrets and key formats)"
    flag = "secret"
    labels_spans = True
    version = 3  # 2: passwords in prose, placeholders and hashes apart; 3: codes, bare values

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            spans = find_secrets(text)
            results.append(
                SignalResult(score=max((s.score for s in spans), default=0.0), spans=spans)
            )
        return results
