"""Refusals: the model declining to do what was asked ("I'm sorry, but I can't help with that",
"I'm not able to give medical advice", "That's not something I can do").

A refusal is a declining phrase followed by a verb of doing what the user asked (help, provide,
book, recommend...), near the start of the answer: that is where a model declines. "I can't see
your account, but here is how to check" names a limit and then helps, so verbs of perceiving
(see, access, view, check) do not count, and a declining phrase deep inside a long helpful
answer scores below the flag's threshold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracetune.backend.signals.base import Reads, Signal, SignalResult, Span, register_signal

_A = "['\u2019]"
_VERBS = (
    r"help|assist|provide|share|give|offer|recommend|advise|write|create|generate|produce|draft|"
    r"do (?:that|this|it|so)|comply|answer|respond to|support|fulfil+|engage|discuss|go into|"
    r"make|book|reserve|process|arrange|change|cancel|approve|authori[sz]e|guarantee|promise|"
    r"diagnose|prescribe|waive|refund|override|bypass|disable|reveal|disclose|release|give out|"
    r"pass on|hand out|tell you|predict|confirm|sign|file|submit|contact|transfer|issue"
)
_NOT_ABLE = (
    r"(?:not able|unable|not allowed|not permitted|not in a position|not going) to"
    r"|(?:have|need) to decline to|must decline to"
)
_DECLINE = (
    rf"(?:I{_A}m sorry,? but |sorry,? but |unfortunately,? |I{_A}m afraid )?"
    rf"I(?: can{_A}?t| can ?not| won{_A}t| will not| won{_A}t be able to| will not be able to"
    rf"| am (?:{_NOT_ABLE})|{_A}m (?:{_NOT_ABLE}))(?: really| actually)? (?:{_VERBS})\b"
)
REFUSAL = re.compile(
    rf"(?<!\bif )(?<!\bwhether )\b(?:{_DECLINE}"
    r"|I must (?:decline|refuse)|I (?:have to|need to) decline|I{_A}d rather not"
    rf"|(?:that{_A}s|that is|this is|it{_A}s|it is) not something I can (?:help|assist|do|provide)"
    r"|(?:this|that) (?:request )?(?:goes against|violates|is against) (?:my|our|the)"
    r" (?:guidelines|policies|policy|rules)"
    rf"|I{_A}m not (?:allowed|permitted) to)",
    re.IGNORECASE,
)  # fmt: skip
#: A refusal starting within this many characters is the answer's own opening move.
EARLY_CHARS = 200


@register_signal
class RefusalSignal(Signal):
    name = "refusal"
    description = "the answer declines the request"
    flag = "refusal"
    reads = Reads.ANSWERS
    version = 2  # 2: "I can't / I'm not able to <do>" phrasings; limits that then help do not count

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            spans = [
                Span(m.start(), m.end(), "REFUSAL", m.group(0)) for m in REFUSAL.finditer(text)
            ]
            score = 0.0
            if spans:
                early = spans[0].start < EARLY_CHARS
                score = 0.95 if early and len(text) < 1500 else 0.7 if early else 0.4
            results.append(SignalResult(score=score, spans=spans))
        return results
