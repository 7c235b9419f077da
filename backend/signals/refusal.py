"""Refusals: the model declining to help ("I'm sorry, but I can't assist with that").

Patterns match the opening moves of a refusal anywhere in an answer; a refusal near the start
of a short answer scores highest, since a long helpful answer may quote one in passing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracetune.backend.signals.base import Reads, Signal, SignalResult, Span, register_signal

_APOSTROPHE = "['\u2019]"
REFUSAL = re.compile(
    rf"\b(?:I{_APOSTROPHE}m sorry,? but I (?:can{_APOSTROPHE}t|cannot|won{_APOSTROPHE}t|am unable)"
    rf"|I (?:can{_APOSTROPHE}t|cannot|won{_APOSTROPHE}t|will not|am not able to|am unable to)"
    r" (?:help|assist|provide|comply|do that|share|fulfil|fulfill|answer|support|create|write)"
    rf"|I{_APOSTROPHE}m (?:not able|unable) to (?:help|assist|provide|comply|answer)"
    r"|I must (?:decline|refuse)|I (?:have to|need to) decline"
    r"|(?:this|that) (?:request )?(?:goes against|violates) (?:my|our|the)"
    r" (?:guidelines|policies|policy)"
    rf"|I{_APOSTROPHE}m not (?:allowed|permitted) to)",
    re.IGNORECASE,
)  # fmt: skip


@register_signal
class RefusalSignal(Signal):
    name = "refusal"
    description = "the answer declines the request"
    flag = "refusal"
    reads = Reads.ANSWERS

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            spans = [
                Span(m.start(), m.end(), "REFUSAL", m.group(0)) for m in REFUSAL.finditer(text)
            ]
            score = 0.0
            if spans:
                early = spans[0].start < 200
                score = 0.95 if early and len(text) < 1500 else 0.7 if early else 0.5
            results.append(SignalResult(score=score, spans=spans))
        return results
