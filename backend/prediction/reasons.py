"""One short line per pre-selected flag, saying why, for the reviewer to read beside it.

"pii: EMAIL, PHONE in the answer", "near_duplicate of task 123 (0.97)", "toxicity 0.91 in
answer B": the evidence is already in the prediction's details, but a reviewer deciding
whether to keep a tick needs it on screen, next to the flag. Lines never quote the matched
text, so a secret is not repeated in a second place.
"""

from __future__ import annotations

from tracetune.backend.prediction.grounding import GroundingResult
from tracetune.backend.prediction.predictor import NEAR_DUPLICATE_FLAG, TaskAnalysis

#: How the reviewer knows each task field, in the order they read them.
FIELD_NAMES = {
    "answer": "the answer",
    "answer_a": "answer A",
    "answer_b": "answer B",
    "prompt": "the prompt",
    "context": "the retrieved context",
}
SPAN_FLAGS = frozenset({"pii", "secret"})


def where(fields: list[str]) -> str:
    """'the answer', 'answer A', 'answers A and B', 'the answer and the prompt'."""
    ordered = _reading_order(fields)
    if ordered[:2] == ["answer_a", "answer_b"]:
        return " and ".join(["answers A and B", *(FIELD_NAMES.get(f, f) for f in ordered[2:])])
    return " and ".join(FIELD_NAMES.get(f, f) for f in ordered)


def _duplicate_reason(analysis: TaskAnalysis) -> str:
    duplicate = analysis.duplicate
    others = list(duplicate.duplicate_of) or (
        [duplicate.nearest_task_id] if duplicate.nearest_task_id is not None else []
    )
    if not others:
        return f"{NEAR_DUPLICATE_FLAG} ({duplicate.score:.2f})"
    shown = ", ".join(str(t) for t in others[:3]) + (" …" if len(others) > 3 else "")
    noun = "task" if len(others) == 1 else "tasks"
    return f"{NEAR_DUPLICATE_FLAG} of {noun} {shown} ({duplicate.score:.2f})"


def _reading_order(fields: list[str]) -> list[str]:
    return [f for f in FIELD_NAMES if f in fields] + sorted(set(fields) - set(FIELD_NAMES))


def _span_reason(flag: str, analysis: TaskAnalysis, fields: list[str]) -> str | None:
    by_field = {
        f: sorted({s.label for s in analysis.spans_in.get(f, [])})
        for f in _reading_order(fields)
        if analysis.spans_in.get(f)
    }
    if not by_field:
        return None
    parts = [f"{', '.join(labels)} in {where([f])}" for f, labels in by_field.items()]
    return f"{flag}: {'; '.join(parts)}"


def flag_reason(flag: str, analysis: TaskAnalysis) -> str:
    """Why `flag` (one of `analysis.fired`) was pre-selected."""
    if flag == NEAR_DUPLICATE_FLAG:
        return _duplicate_reason(analysis)
    found = analysis.fired_in.get(flag, {})
    fields = list(found)
    if flag in SPAN_FLAGS:
        spans = _span_reason(flag, analysis, fields)
        if spans is not None:
            return spans
    score = max(found.values(), default=analysis.scores.get(flag, 0.0))
    return f"{flag} {score:.2f} in {where(fields)}" if fields else f"{flag} {score:.2f}"


def flag_reasons(analysis: TaskAnalysis) -> dict[str, str]:
    """Every pre-selected flag's reason, in the config's order."""
    return {flag: flag_reason(flag, analysis) for flag in analysis.fired}


def grounding_reason(result: GroundingResult) -> str:
    """'grounded: all 3 claims are supported by the context' and the like."""
    total = len(result.sentences)
    unsupported = len(result.unsupported)
    if total == 0:
        return f"{result.verdict.value}: the answer makes no claim to check"
    if unsupported == 0:
        return f"{result.verdict.value}: all {total} claims are supported by the context"
    return (
        f"{result.verdict.value}: {unsupported} of {total} claims not supported by the "
        "context (marked in the answer)"
    )
