"""Model self-reference: "As an AI language model...", "my knowledge cutoff", "I don't have
personal opinions". Answers that talk about themselves rarely make good training targets."""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracetune.backend.signals.base import Reads, Signal, SignalResult, Span, register_signal

_A = "['\u2019]"
SELF_REFERENCE = re.compile(
    r"\bas an? (?:AI|artificial intelligence|(?:large )?language model|LLM|AI (?:language )?model"
    r"|AI assistant|virtual assistant|chatbot)\b"
    rf"|\bI{_A}?m (?:just |only )?an? (?:AI|language model|large language model|LLM|chatbot)\b"
    r"|\bI am (?:just |only )?an? (?:AI|language model|large language model|LLM|chatbot)\b"
    rf"|\bI (?:don{_A}t|do not) have (?:personal (?:opinions|experiences|feelings|beliefs)"
    r"|feelings|emotions|a body|access to (?:the internet|real-time))"
    r"|\bmy (?:knowledge cut-?off|training data|training cut-?off)\b"
    rf"|\b(?:I was|I{_A}ve been) trained (?:by|on)\b",
    re.IGNORECASE,
)  # fmt: skip


@register_signal
class SelfReferenceSignal(Signal):
    name = "self_reference"
    description = 'the answer talks about being a model ("As an AI language model...")'
    flag = "self_reference"
    reads = Reads.ANSWERS

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            spans = [
                Span(m.start(), m.end(), "SELF_REFERENCE", m.group(0))
                for m in SELF_REFERENCE.finditer(text)
            ]
            results.append(SignalResult(score=0.95 if spans else 0.0, spans=spans))
        return results
