"""Code in a text: fenced Markdown blocks (with their language tag), else indented or
syntax-heavy lines that read like code."""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracetune.backend.signals.base import Signal, SignalResult, Span, register_signal

FENCE = re.compile(r"^[ \t]*(```|~~~)[ \t]*([\w+#.-]*)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.M | re.S)
CODE_LINE = re.compile(
    r"^[ \t]*(?:def |class |import |from \S+ import |function |const |let |var |return\b"
    r"|public |private |#include|SELECT |INSERT |UPDATE |CREATE TABLE|if \(|for \(|while \("
    r"|}\s*$|[\w.]+\([^()\n]*\);?\s*$|\$ \w+|<\w+[^>]*>)",
    re.M,
)  # fmt: skip


@register_signal
class CodeSignal(Signal):
    name = "code"
    description = "fenced code blocks, or lines that read like source code"
    flag = "code"

    def compute(self, texts: Sequence[str]) -> list[SignalResult]:
        results = []
        for text in texts:
            blocks = list(FENCE.finditer(text))
            if blocks:
                spans = [Span(m.start(), m.end(), "CODE", m.group(0)) for m in blocks]
                languages = sorted({m.group(2).lower() for m in blocks if m.group(2)})
                results.append(
                    SignalResult(score=0.99, spans=spans, values={"languages": languages})
                )
                continue
            lines = [Span(m.start(), m.end(), "CODE", m.group(0)) for m in CODE_LINE.finditer(text)]
            score = 0.0 if not lines else 0.8 if len(lines) >= 3 else 0.4
            results.append(SignalResult(score=score, spans=lines, values={"languages": []}))
        return results
