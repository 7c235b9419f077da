"""Code in a text: fenced Markdown blocks (with their language tag), indented blocks, or
consecutive lines that read like source code, shell commands or queries.

Prose is full of things that look like code to a loose pattern: "$ 20 per seat", "Total (incl.
VAT)", "3.5 kg", "50%". A line counts only when it starts the way code starts (a keyword, a
shell prompt with a command, a call, a tag, a closing brace), and a single such line is not a
snippet: it takes two in a row, or a fence. Inline `backticks` name a command or a setting in
prose; they are not a block to check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracetune.backend.signals.base import Signal, SignalResult, Span, register_signal

FENCE = re.compile(r"^[ \t]*(```|~~~)[ \t]*([\w+#.-]*)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.M | re.S)
#: Lines that are code on their own: a definition, an import, a query, a shell command.
STRONG_LINE = re.compile(
    r"^[ \t]*(?:def \w+\(|class \w+[(:]|import [\w.]+$|from [\w.]+ import |function \w*\("
    r"|(?:const|let|var) \w+ ?=|#include\b|SELECT \S+.* FROM |INSERT INTO |UPDATE \w+ SET "
    r"|DELETE FROM |CREATE (?:TABLE|INDEX) |\$ [a-z][\w.-]*(?: |$)"
    r"|(?:sudo|pip|npm|npx|git|docker|kubectl|curl|brew|apt(?:-get)?|python3?) [a-z-]+)[^\n]*",
    re.M,
)  # fmt: skip
#: Lines that read like code next to another such line.
CODE_LINE = re.compile(
    r"^[ \t]*(?:return\b[^.\n]*;?$|(?:public|private|static) \w+|(?:if|for|while) ?\(.*\) ?\{?$"
    r"|[}\])]+;?$|[A-Za-z_][\w.]*\((?:[^()\n]|\([^()\n]*\))*\);?$|</?[a-z][\w-]*(?: [^>\n]*)?>"
    r"|[\w.-]+ ?= ?[\"'\[{(\d]|[\w-]+: [\"'\[{]|- (?:name|run|uses): )[^\n]*",
    re.M,
)  # fmt: skip
INDENTED_BLOCK = re.compile(r"(?:^|\n\n)((?:(?: {4}|\t)[^\n]+\n?){2,})")
_CODE_CHARS = re.compile(r"[=(){}\[\];<>]|^\s*[$#>] |^\s+[\w.-]+: \S", re.M)


def _consecutive(lines: list[Span], text: str) -> int:
    """The longest run of code lines with nothing but blank lines between them."""
    best = run = 0
    previous_end = None
    for span in lines:
        between = text[previous_end : span.start] if previous_end is not None else None
        run = run + 1 if between is not None and not between.strip() else 1
        best = max(best, run)
        previous_end = span.end
    return best


@register_signal
class CodeSignal(Signal):
    name = "code"
    description = "fenced or indented code blocks, or consecutive lines that read like code"
    flag = "code"
    version = 2  # 2: two code lines in a row at least; prose with prices and units is no code

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
            indented = [
                Span(m.start(1), m.end(1), "CODE", m.group(1))
                for m in INDENTED_BLOCK.finditer(text)
                if _CODE_CHARS.search(m.group(1))
            ]
            if indented:
                results.append(SignalResult(score=0.9, spans=indented, values={"languages": []}))
                continue
            strong = [
                Span(m.start(), m.end(), "CODE", m.group(0)) for m in STRONG_LINE.finditer(text)
            ]
            weak = [Span(m.start(), m.end(), "CODE", m.group(0)) for m in CODE_LINE.finditer(text)]
            lines = sorted({*strong, *weak}, key=lambda span: span.start)
            run = _consecutive(lines, text)
            score = 0.0 if not lines else 0.8 if run >= 3 else 0.6 if run == 2 or strong else 0.3
            results.append(SignalResult(score=score, spans=lines, values={"languages": []}))
        return results
