"""Label Studio's prediction format for the configs the sync generates.

One prediction per task: the `flags` choices that fired (always present, with the machine-
readable details under `PREDICTION_DETAILS_KEY` for the export), PII and secret spans as
regions where the config has a control for them, and the corrected-answer text area pre-filled
with the original answer so an edit starts from it.
"""

from __future__ import annotations

from typing import Any

from tracetune.backend.prediction.label_targets import LabelTargets
from tracetune.backend.prediction.predictor import TaskAnalysis
from tracetune.sync.review_kinds import PREDICTION_DETAILS_KEY


def details(analysis: TaskAnalysis) -> dict[str, Any]:
    """The contract in `review_kinds.PREDICTION_DETAILS_KEY`, plus similarity and stats."""
    duplicate = analysis.duplicate
    return {
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
    }


def build_prediction(
    analysis: TaskAnalysis, targets: LabelTargets, model_version: str
) -> dict[str, Any]:
    overall = round(analysis.overall, 4)
    result: list[dict[str, Any]] = [
        {
            "id": "tt-flags",
            "from_name": "flags",
            "to_name": targets.flags_to,
            "type": "choices",
            "value": {"choices": analysis.fired},
            "score": overall,
            PREDICTION_DETAILS_KEY: details(analysis),
        }
    ]
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
    if targets.corrected_answer and targets.corrected_source:
        original = analysis.task.data.get(targets.corrected_source)
        if isinstance(original, str) and original:
            from_name, to_name = targets.corrected_answer
            result.append(
                {
                    "id": "tt-corrected",
                    "from_name": from_name,
                    "to_name": to_name,
                    "type": "textarea",
                    "value": {"text": [original]},
                }
            )
    return {"result": result, "score": overall, "model_version": model_version}
