"""Review kinds and the names they share: the one place the sync, backend and export agree on.

A review kind picks a label config template and a task-data layout. The control names below
are the `from_name`s of annotation and prediction results, so the backend writes and the export
reads exactly what the generated config declares.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ReviewKind(StrEnum):
    CHAT = "chat_review"
    PREFERENCE = "preference_pair"
    RAG = "rag_answer"


class Control(StrEnum):
    """`name` of each control tag in the generated configs (`from_name` in results)."""

    VERDICT = "verdict"
    CORRECTED_ANSWER = "corrected_answer"
    FLAGS = "flags"
    QUALITY = "quality"
    PREFERENCE = "preference"
    GROUNDED = "grounded"
    PII_DIALOGUE = "pii_dialogue"
    PII_ANSWER = "pii_answer"
    FLAG_REASONS = "flag_reasons"
    UNSUPPORTED = "unsupported"


class Obj(StrEnum):
    """`name` of each object tag (`to_name` in results)."""

    DIALOGUE = "dialogue"
    ANSWER = "answer"
    ANSWER_A = "answer_a"
    ANSWER_B = "answer_b"
    QUESTION = "question"
    CONTEXT = "context"


class Verdict(StrEnum):
    ACCEPT = "accept"
    EDIT = "edit"
    REJECT = "reject"


class Grounding(StrEnum):
    """Choices of the RAG config's `grounded` control: is the answer backed by the context?"""

    GROUNDED = "grounded"
    PARTIALLY = "partially"
    NOT_GROUNDED = "not grounded"


#: Label of the `unsupported` regions: answer sentences no context passage supports.
UNSUPPORTED_LABEL = "unsupported"


#: Review flags: problems in the answer under review that a reviewer acts on. The sync's
#: configs offer them and the backend pre-selects each one that fires.
DEFAULT_FLAGS: tuple[str, ...] = (
    "pii",
    "secret",
    "near_duplicate",
    "non_english",
    "refusal",
    "self_reference",
    "toxicity",
    "profanity",
)

#: Informational flags: the backend scores them into every prediction's details, but they are
#: no problem to fix, so a config offers them (and the backend pre-selects them) only when the
#: project opts in by adding the choice to its config's `flags`. `code` is one: a code block is
#: what a documentation or developer assistant should answer with (on the bundled sample it
#: fired on 101 of 291 answers, all true); a project whose bot must never send code opts in.
INFORMATIONAL_FLAGS: tuple[str, ...] = (
    "code",
    "question",
    "negative_sentiment",
    "positive_sentiment",
)

#: What each built-in flag judges, shown to reviewers as the choice's hint.
FLAG_HINTS: dict[str, str] = {
    "pii": "the answer holds a private person's data (contact, ID, card, address); "
    "business contact details and partial numbers are not PII",
    "secret": "the answer holds a password, API key, token or private key (not a placeholder)",
    "near_duplicate": "the user turns and the answer repeat an earlier task",
    "non_english": "the answer is not in English",
    "refusal": "the answer declines the request",
    "self_reference": "the answer talks about being an AI or a language model",
    "code": "the answer contains a code block, commands or config to run or paste",
    "toxicity": "the answer is insulting, hostile or demeaning",
    "profanity": "the answer swears",
    "question": "the answer asks the user a question back",
    "negative_sentiment": "the user's message sounds frustrated, angry or worried",
    "positive_sentiment": "the user's message sounds pleased or grateful",
}

#: Entity types of PII spans; the backend labels regions with these values.
PII_LABELS: tuple[str, ...] = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IP_ADDRESS",
    "IBAN",
    "NATIONAL_ID",
    "ADDRESS",
    "DATE_OF_BIRTH",
    "PERSON",
    "SECRET",
)

#: Task-data keys whose text the backend analyses, per review kind, most important first.
TEXT_FIELDS: dict[ReviewKind, tuple[str, ...]] = {
    ReviewKind.CHAT: ("prompt", "answer"),
    ReviewKind.RAG: ("prompt", "answer", "context"),
    ReviewKind.PREFERENCE: ("prompt", "answer_a", "answer_b"),
}

#: Key on the ML backend's `flags` prediction result (always present, `choices` may be empty)
#: that carries its machine-readable output for the export's filters. Label Studio stores it
#: as-is. Shape: {"scores": {flag_or_concept: float in [0, 1]}, "cluster_id": str | None,
#: "nearest_task_id": int | None, "pii_types": [str], "language": str | None,
#: "reasons": {flag: str}, "tags": str}.
PREDICTION_DETAILS_KEY = "tracetune"


def prediction_tag(name: str, value: str) -> str:
    """A marker the backend writes into a prediction and a Data Manager tab filters on.

    Label Studio filters predictions by a substring of their JSON, so each fired flag (and
    each groundedness verdict) is written as `tt:<name>=<value>;`, which no flag name, score
    or ordinary answer text contains by accident.
    """
    return f"tt:{name}={value.replace(' ', '_')};"


def choices_result(control: Control, values: list[str], to: Obj = Obj.ANSWER) -> dict[str, Any]:
    """One `choices` annotation result, as Label Studio stores a reviewer's click."""
    return {"from_name": control.value, "to_name": to.value, "type": "choices",
            "value": {"choices": values}}  # fmt: skip


def chat_review_result(
    verdict: Verdict, corrected: str | None = None, flags: list[str] | None = None
) -> list[dict[str, Any]]:
    """The annotation result of a chat review: a verdict, an edited answer, flags."""
    result = [choices_result(Control.VERDICT, [verdict.value])]
    if corrected is not None:
        result.append({"from_name": Control.CORRECTED_ANSWER.value, "to_name": Obj.ANSWER.value,
                       "type": "textarea", "value": {"text": [corrected]}})  # fmt: skip
    if flags:
        result.append(choices_result(Control.FLAGS, flags))
    return result
