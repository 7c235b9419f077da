"""Questions in the user's prompt: a question mark, or a sentence opening like one.

Sentence embeddings read topic better than form (the `question` concept tells "How do I reset
my password?" from "Reset my password." at chance), so this rule backs the concept up.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracetune.backend.signals.base import Reads, Signal, SignalResult, Span, register_signal

MARKS = "?\uff1f\u061f"  # ASCII, full-width (CJK) and Arabic question marks
QUESTION_MARK = re.compile(rf"[^.!?\n]*[{MARKS}](?=\s|$)")
OPENING = re.compile(
    r"(?:^|(?<=[.!\n]\s))(?:how|what|why|when|where|which|who|whom|whose|is|are|am|was|were|can"
    r"|could|would|should|shall|do|does|did|will|have|has|any idea|i was wondering|i wonder)\b"
    r"[^.!?\n]*",
    re.IGNORECASE,
)  # fmt: skip


@register_signal
class QuestionSignal(Signal):
    name = "question"
    description = "the prompt asks a question (question mark or interrogative opening)"
    flag = "question"
    reads = Reads.PROMPT

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            marked = [
                Span(m.start(), m.end(), "QUESTION", m.group(0).strip())
                for m in QUESTION_MARK.finditer(text)
                if m.group(0).strip(" " + MARKS)
            ]
            if marked:
                results.append(SignalResult(score=0.9, spans=marked))
                continue
            opened = [
                Span(m.start(), m.end(), "QUESTION", m.group(0)) for m in OPENING.finditer(text)
            ]
            results.append(SignalResult(score=0.7 if opened else 0.0, spans=opened))
        return results
