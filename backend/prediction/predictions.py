"""Label Studio's prediction format for the configs the sync generates, and for partial ones.

One prediction per task, with a result only for each control the config has:
- the `flags` choices that fired, carrying the machine-readable details under
  `PREDICTION_DETAILS_KEY` (for the export, the Data Manager tabs and the reasons);
- `flag_reasons`: one read-only line per fired flag saying why ("pii: EMAIL in the answer"),
  the groundedness verdict of a RAG answer, and anything about the task the backend could
  not judge;
- PII and secret spans as regions over the answer and the dialogue turns;
- a RAG answer's `grounded` choice and its `unsupported` sentences as regions;
- the corrected-answer text area pre-filled with the original answer, so an edit starts
  from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracetune.backend.prediction.grounding import GroundingResult
from tracetune.backend.prediction.label_targets import LabelTargets
from tracetune.backend.prediction.predictor import TaskAnalysis
from tracetune.backend.prediction.reasons import flag_reasons, grounding_reason
from tracetune.sync.review_kinds import (
    PREDICTION_DETAILS_KEY,
    UNSUPPORTED_LABEL,
    Control,
    prediction_tag,
)

NO_FLAG = "no flag: the backend found nothing to fix"


def details(
    analysis: TaskAnalysis,
    reasons: dict[str, str],
    grounding: GroundingResult | None,
    problems: Sequence[str],
) -> dict[str, Any]:
    """The contract in `review_kinds.PREDICTION_DETAILS_KEY`, plus similarity and stats."""
    duplicate = analysis.duplicate
    tags = [prediction_tag(Control.FLAGS.value, flag) for flag in analysis.fired]
    found: dict[str, Any] = {
        "scores": analysis.scores,
        "cluster_id": duplicate.cluster_id,
        "nearest_task_id": duplicate.nearest_task_id,
        "nearest_similarity": round(duplicate.nearest_similarity, 4),
        "duplicate_of": list(duplicate.duplicate_of),
        "pii_types": analysis.pii_types,
        "language": analysis.language,
        "stats": analysis.stats,
        "prompt_scores": analysis.prompt_scores,
        "prompt_language": analysis.prompt_language,
        "reasons": reasons,
        "fired_in": analysis.fired_in,
    }
    if grounding is not None:
        tags.append(prediction_tag(Control.GROUNDED.value, grounding.verdict.value))
        found["grounding"] = {
            "verdict": grounding.verdict.value,
            "claims": len(grounding.sentences),
            "unsupported": [s.sentence.text for s in grounding.unsupported],
        }
    if problems:
        found["problems"] = list(problems)
    found["tags"] = " ".join(tags)
    return found


def _reason_lines(
    targets: LabelTargets, lines: Sequence[str], result: list[dict[str, Any]]
) -> None:
    if targets.reasons is not None and lines:
        result.append(
            {
                "id": "tt-reasons",
                "from_name": targets.reasons.from_name,
                "to_name": targets.reasons.to_name,
                "type": "textarea",
                "readonly": True,
                "value": {"text": list(lines)},
            }
        )


def _spans(analysis: TaskAnalysis, targets: LabelTargets) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    span = targets.text_span
    if span is not None:
        for i, found in enumerate(s for s in analysis.text_spans if s.label in span.labels):
            result.append(
                {
                    "id": f"tt-span-{i}",
                    "from_name": span.from_name,
                    "to_name": span.to_name,
                    "type": "labels",
                    "value": {
                        "start": found.start,
                        "end": found.end,
                        "text": found.text,
                        "labels": [found.label],
                    },
                    "score": found.score,
                }
            )
    paragraphs = targets.paragraph_span
    if paragraphs is not None:
        kept = [(p, s) for p, s in analysis.paragraph_spans if s.label in paragraphs.labels]
        for i, (index, found) in enumerate(kept):
            result.append(
                {
                    "id": f"tt-paragraph-{i}",
                    "from_name": paragraphs.from_name,
                    "to_name": paragraphs.to_name,
                    "type": "paragraphlabels",
                    "value": {
                        "start": str(index),
                        "end": str(index),
                        "startOffset": found.start,
                        "endOffset": found.end,
                        "text": found.text,
                        "paragraphlabels": [found.label],
                    },
                    "score": found.score,
                }
            )
    return result


def _grounding_results(grounding: GroundingResult, targets: LabelTargets) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    choice = targets.grounded
    if choice is not None and grounding.verdict.value in choice.values:
        result.append(
            {
                "id": "tt-grounded",
                "from_name": choice.from_name,
                "to_name": choice.to_name,
                "type": "choices",
                "value": {"choices": [grounding.verdict.value]},
            }
        )
    target = targets.unsupported
    if target is not None and UNSUPPORTED_LABEL in target.labels:
        for i, claim in enumerate(grounding.unsupported):
            sentence = claim.sentence
            result.append(
                {
                    "id": f"tt-unsupported-{i}",
                    "from_name": target.from_name,
                    "to_name": target.to_name,
                    "type": "labels",
                    "value": {
                        "start": sentence.start,
                        "end": sentence.end,
                        "text": sentence.text,
                        "labels": [UNSUPPORTED_LABEL],
                    },
                    "score": round(1.0 - claim.score, 3),
                }
            )
    return result


def _corrected(original: Any, targets: LabelTargets) -> list[dict[str, Any]]:
    if not (targets.corrected_answer and isinstance(original, str) and original):
        return []
    from_name, to_name = targets.corrected_answer
    return [
        {
            "id": "tt-corrected",
            "from_name": from_name,
            "to_name": to_name,
            "type": "textarea",
            "value": {"text": [original]},
        }
    ]


def build_prediction(
    analysis: TaskAnalysis,
    targets: LabelTargets,
    model_version: str,
    grounding: GroundingResult | None = None,
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    """The prediction of one analysed task; `problems` are what the backend could not judge
    (a missing field), shown to the reviewer among the reasons."""
    overall = round(analysis.overall, 4)
    reasons = flag_reasons(analysis)
    result: list[dict[str, Any]] = []
    if targets.flags_to is not None:
        result.append(
            {
                "id": "tt-flags",
                "from_name": Control.FLAGS.value,
                "to_name": targets.flags_to,
                "type": "choices",
                "value": {"choices": analysis.fired},
                "score": overall,
                PREDICTION_DETAILS_KEY: details(analysis, reasons, grounding, problems),
            }
        )
    lines = [grounding_reason(grounding)] if grounding is not None else []
    lines += list(reasons.values()) or ([NO_FLAG] if targets.flags_to is not None else [])
    _reason_lines(targets, [*lines, *problems], result)
    result += _spans(analysis, targets)
    if grounding is not None:
        result += _grounding_results(grounding, targets)
    answer_key = targets.corrected_source
    result += _corrected(analysis.task.data.get(answer_key) if answer_key else None, targets)
    return {"result": result, "score": overall, "model_version": model_version}


def unjudged_prediction(
    targets: LabelTargets, model_version: str, problems: Sequence[str]
) -> dict[str, Any]:
    """The prediction of a task the backend could not analyse at all: no pre-selection, and
    the reason on screen (and in the details) instead of failing the whole batch."""
    result: list[dict[str, Any]] = []
    if targets.flags_to is not None:
        result.append(
            {
                "id": "tt-flags",
                "from_name": Control.FLAGS.value,
                "to_name": targets.flags_to,
                "type": "choices",
                "value": {"choices": []},
                "score": 0.0,
                PREDICTION_DETAILS_KEY: {"problems": list(problems), "tags": ""},
            }
        )
    _reason_lines(targets, problems, result)
    return {"result": result, "score": 0.0, "model_version": model_version}
