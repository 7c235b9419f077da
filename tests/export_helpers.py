"""Builders for the export tests: task data as the sync writes it, results as Label Studio stores.

The same result builders feed the SDK (`annotations.create`, `predictions.create`) in the
integration tests and plain task dicts in the unit tests, so both see one shape.
"""

from __future__ import annotations

from typing import Any

from tracetune.sync.conversation import Conversation, Feedback, Message
from tracetune.sync.review_kinds import PREDICTION_DETAILS_KEY, Control, Obj, ReviewKind
from tracetune.sync.task_data import conversation_task, pair_task


def conversation(
    run_id: str,
    question: str,
    answer: str,
    feedback: tuple[tuple[str, float], ...] = (),
    system: str | None = "You are the docs assistant.",
) -> Conversation:
    messages = [Message(role="system", content=system)] if system else []
    messages += [Message(role="user", content=question), Message(role="assistant", content=answer)]
    return Conversation(
        run_id=run_id,
        messages=messages,
        feedback=[Feedback(key=k, score=s) for k, s in feedback],
        source_shape="chain",
    )


def chat_data(run_id: str, question: str, answer: str, **kwargs: Any) -> dict[str, Any]:
    return conversation_task(conversation(run_id, question, answer, **kwargs), ReviewKind.CHAT)


def pair_data(run_a: str, run_b: str, question: str, answer_a: str, answer_b: str) -> dict:
    return pair_task(
        conversation(run_a, question, answer_a), conversation(run_b, question, answer_b)
    )


def verdict(
    value: str,
    corrected: str | None = None,
    flags: tuple[str, ...] = (),
    pii: tuple[tuple[str, str, int], ...] = (),
) -> list[dict[str, Any]]:
    """Result list of a chat review: verdict, optional correction, flags and PII spans.

    `pii` holds (label, text, start offset in the answer) triples.
    """
    result: list[dict[str, Any]] = [
        {
            "from_name": Control.VERDICT.value,
            "to_name": Obj.ANSWER.value,
            "type": "choices",
            "value": {"choices": [value]},
        }
    ]
    if corrected is not None:
        result.append(
            {
                "from_name": Control.CORRECTED_ANSWER.value,
                "to_name": Obj.ANSWER.value,
                "type": "textarea",
                "value": {"text": [corrected]},
            }
        )
    if flags:
        result.append(
            {
                "from_name": Control.FLAGS.value,
                "to_name": Obj.ANSWER.value,
                "type": "choices",
                "value": {"choices": list(flags)},
            }
        )
    for index, (label, text, start) in enumerate(pii):
        result.append(
            {
                "id": f"pii{index}",
                "from_name": Control.PII_ANSWER.value,
                "to_name": Obj.ANSWER.value,
                "type": "labels",
                "value": {
                    "start": start,
                    "end": start + len(text),
                    "text": text,
                    "labels": [label],
                },
            }
        )
    return result


def preference(selected: str) -> list[dict[str, Any]]:
    return [
        {
            "from_name": Control.PREFERENCE.value,
            "to_name": f"{Obj.ANSWER_A.value},{Obj.ANSWER_B.value}",
            "type": "pairwise",
            "value": {"selected": selected},
        }
    ]


def details_result(
    scores: dict[str, float] | None = None,
    cluster_id: str | None = None,
    pii_types: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    to_name: str = Obj.ANSWER.value,
) -> list[dict[str, Any]]:
    """The ML backend's `flags` prediction result carrying its machine-readable details."""
    return [
        {
            "from_name": Control.FLAGS.value,
            "to_name": to_name,
            "type": "choices",
            "value": {
                "choices": list(flags),
                PREDICTION_DETAILS_KEY: {
                    "scores": scores or {},
                    "cluster_id": cluster_id,
                    "nearest_task_id": None,
                    "pii_types": list(pii_types),
                    "language": "en",
                },
            },
        }
    ]


def annotation(
    annotation_id: int,
    result: list[dict[str, Any]],
    *,
    cancelled: bool = False,
    ground_truth: bool = False,
    minute: int = 0,
) -> dict[str, Any]:
    return {
        "id": annotation_id,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": ground_truth,
        "completed_by": 1,
        "updated_at": f"2026-11-20T10:{minute:02d}:00.000000Z",
    }


def task(
    task_id: int,
    data: dict[str, Any],
    annotations: list[dict[str, Any]] | None = None,
    predictions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": task_id,
        "data": data,
        "annotations": annotations or [],
        "predictions": predictions or [],
    }
