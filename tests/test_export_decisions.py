"""Review decisions, filters and example building over task JSON (no server needed)."""

from __future__ import annotations

import pytest
from export_helpers import (
    annotation,
    chat_data,
    details_result,
    pair_data,
    preference,
    task,
    verdict,
)

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.export.decisions import Decision, Rule, decide
from tracetune.sync.export.examples import build_examples
from tracetune.sync.export.filters import (
    ExportFilters,
    FeedbackRule,
    PiiPolicy,
    apply_filters,
    parse_max_scores,
)


def _chat(task_id: int, *annotations: dict, answer: str = "Open Settings.", **kw: object) -> dict:
    data = chat_data(f"run-{task_id}", f"How do I do thing {task_id}?", answer, **kw)  # type: ignore[arg-type]
    return task(task_id, data, list(annotations))


def test_each_verdict_becomes_its_decision() -> None:
    accepted = decide(_chat(1, annotation(11, verdict("accept"))))
    edited = decide(_chat(2, annotation(12, verdict("edit", corrected="Better."))))
    rejected = decide(_chat(3, annotation(13, verdict("reject"))))
    skipped = decide(_chat(4, annotation(14, [], cancelled=True)))
    untouched = decide(_chat(5))
    no_verdict = decide(_chat(6, annotation(16, [])))
    empty_edit = decide(_chat(7, annotation(17, verdict("edit"))))

    assert (accepted.decision, accepted.reason, accepted.annotation_id) == (
        Decision.ACCEPTED,
        None,
        11,
    )
    assert accepted.answer is not None and accepted.answer.content == "Open Settings."
    assert [m.role for m in accepted.prompt] == ["system", "user"]
    assert (edited.decision, edited.corrected, edited.reason) == (Decision.EDITED, "Better.", None)
    assert (rejected.decision, rejected.reason) == (Decision.REJECTED, "rejected")
    assert (skipped.decision, skipped.reason) == (Decision.CANCELLED, "cancelled")
    assert (untouched.decision, untouched.reason) == (Decision.UNREVIEWED, "unreviewed")
    assert (no_verdict.decision, no_verdict.reason) == (Decision.INCOMPLETE, "no_verdict")
    assert empty_edit.reason == "edit_without_correction"
    assert accepted.run_ids == ("run-1",)


def test_preference_tasks_order_the_answers_by_the_selected_side() -> None:
    data = pair_data("a1", "b1", "Which plan?", "Plan A is best.", "Plan B is best.")
    left = decide(task(1, data, [annotation(1, preference("left"))]))
    right = decide(task(2, data, [annotation(2, preference("right"))]))
    none = decide(task(3, data, [annotation(3, [])]))

    assert left.decision is Decision.PREFERENCE
    assert (left.chosen.content, left.rejected.content) == ("Plan A is best.", "Plan B is best.")  # type: ignore[union-attr]
    assert right.chosen.content == "Plan B is best."  # type: ignore[union-attr]
    assert left.run_ids == ("a1", "b1")
    assert [m.role for m in left.prompt] == ["system", "user"]
    assert none.reason == "no_preference_selected"


def test_several_annotators_ground_truth_then_majority_then_latest() -> None:
    ground = decide(
        _chat(
            1,
            annotation(1, verdict("accept"), minute=1),
            annotation(2, verdict("reject"), ground_truth=True, minute=0),
            annotation(3, verdict("accept"), minute=2),
        )
    )
    majority = decide(
        _chat(
            2,
            annotation(4, verdict("edit", corrected="Fixed A."), minute=1),
            annotation(5, verdict("reject"), minute=5),
            annotation(6, verdict("edit", corrected="Fixed B."), minute=3),
        )
    )
    tie = decide(
        _chat(
            3,
            annotation(7, verdict("accept"), minute=9),
            annotation(8, verdict("reject"), minute=4),
            annotation(9, [], cancelled=True, minute=59),
        )
    )

    assert (ground.rule, ground.annotation_id, ground.decision) == (
        Rule.GROUND_TRUTH,
        2,
        Decision.REJECTED,
    )
    # The latest of the agreeing annotations speaks for the majority.
    assert (majority.rule, majority.annotation_id, majority.corrected) == (
        Rule.MAJORITY,
        6,
        "Fixed B.",
    )
    assert (tie.rule, tie.annotation_id, tie.decision) == (Rule.LATEST, 7, Decision.ACCEPTED)
    assert tie.annotators == 3


def test_examples_follow_the_decisions() -> None:
    tasks = [
        decide(_chat(1, annotation(1, verdict("accept")))),
        decide(_chat(2, annotation(2, verdict("edit", corrected="Corrected two.")))),
        decide(_chat(3, annotation(3, verdict("reject")))),
        decide(_chat(4, annotation(4, [], cancelled=True))),
        decide(
            task(
                5,
                pair_data("a", "b", "Q?", "Answer A.", "Answer B."),
                [annotation(5, preference("right"))],
            )
        ),
    ]
    sft, pairs, kept_rejected = build_examples(tasks)

    assert [e.lineage.task_id for e in sft] == [1, 2]
    assert sft[1].messages[-1].content == "Corrected two."
    assert [(p.lineage.task_id, p.chosen.content, p.rejected.content) for p in pairs] == [
        (2, "Corrected two.", "Open Settings."),
        (5, "Answer B.", "Answer A."),
    ]
    assert kept_rejected == 0


def test_a_rejected_answer_becomes_the_rejected_side_when_a_better_answer_exists() -> None:
    same_question = "How do I reset my password?"
    good = task(
        1, chat_data("r1", same_question, "Use the reset link."), [annotation(1, verdict("accept"))]
    )
    bad = task(2, chat_data("r2", same_question, "Call us."), [annotation(2, verdict("reject"))])
    bad_with_fix = _chat(
        3, annotation(3, verdict("reject", corrected="Use the link.")), answer="No."
    )
    alone = _chat(4, annotation(4, verdict("reject")), answer="Nope.")

    sft, pairs, kept_rejected = build_examples(
        [decide(t) for t in (good, bad, bad_with_fix, alone)]
    )

    assert [e.lineage.task_id for e in sft] == [1]
    assert [(p.lineage.task_id, p.chosen.content, p.rejected.content) for p in pairs] == [
        (2, "Use the reset link.", "Call us."),
        (3, "Use the link.", "No."),
    ]
    assert pairs[0].lineage.chosen_from_task == 1
    assert kept_rejected == 2


def test_pii_is_redacted_from_labelled_spans_or_the_task_is_dropped() -> None:
    answer = "Write to jane@example.com or call 555-0100."
    spans = (("EMAIL", "jane@example.com", 9), ("PHONE", "555-0100", 34))
    labelled = _chat(1, annotation(1, verdict("accept", flags=("pii",), pii=spans)), answer=answer)
    flagged_only = _chat(2, annotation(2, verdict("accept", flags=("pii",))), answer=answer)
    machine_flagged = _chat(3, annotation(3, verdict("accept")), answer=answer)
    machine_flagged["predictions"] = [{"id": 1, "result": details_result(pii_types=("EMAIL",))}]
    reviewer_cleared = _chat(4, annotation(4, verdict("accept", flags=("code",))), answer=answer)
    reviewer_cleared["predictions"] = machine_flagged["predictions"]
    machine_spans = _chat(5, annotation(5, verdict("accept")), answer=answer)
    detected = verdict("accept", pii=spans)[1:]  # the backend's span results, no verdict
    machine_spans["predictions"] = [
        {"id": 2, "result": details_result(pii_types=("EMAIL", "PHONE")) + detected}
    ]
    tasks = [
        decide(t)
        for t in (labelled, flagged_only, machine_flagged, reviewer_cleared, machine_spans)
    ]

    redacted = apply_filters(tasks, ExportFilters(pii=PiiPolicy.REDACT))
    dropped = apply_filters(tasks, ExportFilters(pii=PiiPolicy.DROP))
    kept = apply_filters(tasks, ExportFilters(pii=PiiPolicy.KEEP))

    assert redacted[0].answer.content == "Write to [EMAIL] or call [PHONE]."  # type: ignore[union-attr]
    assert redacted[4].answer.content == "Write to [EMAIL] or call [PHONE]."  # type: ignore[union-attr]
    assert [t.reason for t in redacted] == [
        None,
        "pii_unredactable",
        "pii_unredactable",
        None,
        None,
    ]
    assert [t.reason for t in dropped] == ["pii", "pii", "pii", None, "pii"]
    assert [t.reason for t in kept] == [None] * 5
    assert kept[0].answer.content == answer  # type: ignore[union-attr]


def test_scores_near_duplicates_and_feedback_filters() -> None:
    def scored(task_id: int, score: float, cluster: str, feedback: tuple = ()) -> dict:
        item = _chat(task_id, annotation(task_id, verdict("accept")), feedback=feedback)
        item["predictions"] = [
            {"id": 1, "created_at": "2026-11-01T00:00:00Z", "result": details_result()},
            {
                "id": 2,
                "created_at": "2026-11-02T00:00:00Z",
                "result": details_result(scores={"toxicity": score}, cluster_id=cluster),
            },
        ]
        return item

    tasks = [
        decide(scored(1, 0.9, "c1", (("thumbs", 1.0),))),
        decide(scored(2, 0.1, "c2", (("thumbs", 0.0),))),
        decide(scored(3, 0.2, "c2", (("thumbs", 1.0),))),
        decide(scored(4, 0.3, "c3")),
    ]
    by_score = apply_filters(tasks, ExportFilters(max_scores={"toxicity": 0.5}))
    deduped = apply_filters(tasks, ExportFilters(dedupe=True))
    rated = apply_filters(tasks, ExportFilters(feedback=(FeedbackRule.parse("thumbs>=1"),)))
    any_feedback = apply_filters(tasks, ExportFilters(feedback=(FeedbackRule.parse("thumbs"),)))

    assert [t.reason for t in by_score] == ["score_over_threshold:toxicity", None, None, None]
    assert [t.reason for t in deduped] == [None, None, "near_duplicate", None]
    assert [t.reason for t in rated] == [None, "feedback_filter", None, "feedback_filter"]
    assert [t.reason for t in any_feedback] == [None, None, None, "feedback_filter"]


def test_filter_options_are_parsed_or_refused_with_a_clear_message() -> None:
    assert parse_max_scores(["toxicity=0.8", "refusal=0.5"]) == {"toxicity": 0.8, "refusal": 0.5}
    assert str(FeedbackRule.parse("user_score>=0.5")) == "user_score>=0.5"
    with pytest.raises(InvalidInputError, match="CONCEPT=NUMBER"):
        parse_max_scores(["toxicity"])
    with pytest.raises(InvalidInputError, match="KEY or KEY>=NUMBER"):
        FeedbackRule.parse("score>=")
