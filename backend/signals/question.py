"""Questions: a question mark, or a sentence opening like one.

It runs on every text: on the user's message it says whether the user asked a question (an
informational score in the prediction's details), on the answer whether the answer asks the
user something back, which is what the `question` flag judges. Sentence embeddings read topic
better than form ("How do I reset my password?" and "Reset my password." embed alike), which
is why this is a rule and not a concept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracetune.backend.signals.base import Signal, SignalResult, Span, register_signal

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
    description = "a question (mark or interrogative opening); the flag: the answer asks back"
    flag = "question"
    version = 2  # 2: judges the answer; the prompt's score is informational

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
