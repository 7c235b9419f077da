"""Secrets and API keys in traces: detect-secrets' plugins plus current key formats.

The plugins run line by line without detect-secrets' "eager" ad hoc mode, which flags every
word of prose; its heuristic filters (sequential strings, UUIDs, templates, `$VAR`, ids) then
drop the usual false positives. detect-secrets reports a value, sometimes only a token's
prefix, so each span is widened to the whole token it sits in. Key formats newer than the
plugins (OpenAI project keys, GitHub fine-grained tokens, LangSmith, Hugging Face...) are
matched by pattern.

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


def _line_spans(line: str) -> list[tuple[int, int]]:
    found = [match.span() for match in KEY_PATTERNS.finditer(line)]
    context = get_code_snippet(lines=[line], line_number=1)
    for plugin in _PLUGINS:
        for secret in plugin.analyze_line(
            filename="trace.txt", line=line, line_number=1, context=context
        ):
            value = secret.secret_value or ""
            position = line.find(value) if value else -1
            if position >= 0 and not _filtered_out(value, line, plugin):
                found.append(_widen(line, position, position + len(value)))
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

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            spans = find_secrets(text)
            results.append(
                SignalResult(score=max((s.score for s in spans), default=0.0), spans=spans)
            )
        return results
