"""The review tabs a project gets: which, filtering on what, hiding which columns."""

from __future__ import annotations

from tracetune.sync.label_studio.views import hidden_columns, wanted_tabs
from tracetune.sync.review_kinds import ReviewKind, prediction_tag


def test_a_tab_per_flag_after_all_tasks_and_groundedness_tabs_for_rag() -> None:
    chat = wanted_tabs(["pii", "near_duplicate"], ReviewKind.CHAT)
    assert [t.title for t in chat] == ["All tasks", "pii", "near_duplicate"]
    assert chat[0].filters == []
    (only,) = chat[1].filters
    assert only == {"filter": "filter:tasks:predictions_results", "operator": "contains",
                    "type": "String", "value": "tt:flags=pii;"}  # fmt: skip
    rag = wanted_tabs(["pii"], ReviewKind.RAG)
    assert [t.title for t in rag] == ["All tasks", "not grounded", "partially", "pii"]
    assert rag[1].filters[0]["value"] == prediction_tag("grounded", "not grounded")
    assert prediction_tag("grounded", "not grounded") == "tt:grounded=not_grounded;"


def test_raw_and_noisy_columns_are_hidden_and_readable_ones_kept() -> None:
    columns = [
        {"id": "dialogue", "parent": "data"},
        {"id": "prompt", "parent": "data"},
        {"id": "answer", "parent": "data"},
        {"id": "messages", "parent": "data"},
        {"id": "their_own_field", "parent": "data"},
        {"id": "id", "parent": None},
        {"id": "inner_id", "parent": None},
        {"id": "predictions_results", "parent": None},
        {"id": "total_annotations", "parent": None},
        {"id": "data", "parent": None},
    ]
    assert hidden_columns(columns) == [
        "tasks:data.dialogue",
        "tasks:data.messages",
        "tasks:inner_id",
        "tasks:predictions_results",
    ]
