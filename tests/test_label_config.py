"""Generated label configs: well-formed, self-consistent, and reading only keys the tasks have."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from tracetune.backend.prediction.label_targets import read_targets
from tracetune.sync.conversation import ContextDoc, Conversation, Message
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.label_config import (
    check_config,
    flag_choices,
    kind_of_config,
    referenced_variables,
    render_label_config,
)
from tracetune.sync.review_kinds import DEFAULT_FLAGS, ReviewKind
from tracetune.sync.task_data import conversation_task, pair_task


def _conversation(run_id: str, answer: str, project: str = "exp-a") -> Conversation:
    return Conversation(
        run_id=run_id,
        messages=[
            Message(role="system", content="You answer questions about Acme docs."),
            Message(role="user", content="How do I rotate my API key?"),
            Message(role="assistant", content=answer),
        ],
        context_docs=[ContextDoc(content="Keys rotate under Settings > API.", source="keys.md")],
        source_shape="openai_chat",
        project=project,
        start_time=datetime(2026, 11, 1, tzinfo=UTC),
    )


def _task(kind: ReviewKind) -> dict[str, object]:
    if kind is ReviewKind.PREFERENCE:
        return pair_task(_conversation("a", "Open Settings."), _conversation("b", "No idea.", "b"))
    return conversation_task(_conversation("a", "Open Settings > API."), kind)


@pytest.mark.parametrize("kind", list(ReviewKind))
def test_every_variable_a_config_reads_is_in_its_task_data(kind: ReviewKind) -> None:
    config = render_label_config(kind)
    data = _task(kind)
    assert referenced_variables(config) <= set(data)
    check_config(config, data)
    assert kind_of_config(config) is kind


@pytest.mark.parametrize("kind", list(ReviewKind))
def test_every_config_lists_why_each_flag_fired_under_the_flags(kind: ReviewKind) -> None:
    """The `flag_reasons` list follows the flags, points where they point, and shows no input
    box (the backend's lines are the only entries)."""
    targets = read_targets(render_label_config(kind))
    assert targets.reasons is not None and targets.reasons.to_name == targets.flags_to
    root = ET.fromstring(render_label_config(kind))
    names = [e.get("name") for e in root.iter() if e.get("name")]
    assert names.index("flag_reasons") == names.index("flags") + 1
    (reasons,) = [e for e in root.iter("TextArea") if e.get("name") == "flag_reasons"]
    assert reasons.get("maxSubmissions") == "0"


def test_only_the_rag_config_has_groundedness_controls() -> None:
    rag = read_targets(render_label_config(ReviewKind.RAG))
    assert rag.grounded is not None and rag.unsupported is not None
    assert rag.grounded.values == ("grounded", "partially", "not grounded")
    assert rag.unsupported.data_key == "answer" and rag.unsupported.labels == {"unsupported"}
    for kind in (ReviewKind.CHAT, ReviewKind.PREFERENCE):
        targets = read_targets(render_label_config(kind))
        assert targets.grounded is None and targets.unsupported is None


def test_flags_come_from_the_names_given_without_duplicates() -> None:
    config = render_label_config(ReviewKind.CHAT, [*DEFAULT_FLAGS, "pricing_question", "pii"])
    assert flag_choices(config) == [*DEFAULT_FLAGS, "pricing_question"]


def test_flag_names_are_escaped_so_the_xml_stays_valid() -> None:
    config = render_label_config(ReviewKind.CHAT, ['quote"and<tag>'])
    assert flag_choices(config) == ['quote"and<tag>']


def test_a_config_reading_a_missing_key_is_refused() -> None:
    config = render_label_config(ReviewKind.RAG)
    data = conversation_task(_conversation("a", "x"), ReviewKind.CHAT)
    with pytest.raises(InvalidInputError, match="context_docs"):
        check_config(config, data)


def test_a_control_pointing_at_a_missing_object_is_refused() -> None:
    config = '<View><Text name="t" value="$answer"/><Choices name="c" toName="nope"/></View>'
    with pytest.raises(InvalidInputError, match="nope"):
        check_config(config, {"answer": "x"})


def test_malformed_xml_is_refused_with_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="well-formed"):
        check_config("<View><Text name='t'", {})


def test_a_foreign_config_has_no_review_kind() -> None:
    assert kind_of_config('<View><Text name="t" value="$text"/></View>') is None


@pytest.mark.integration
@pytest.mark.parametrize("kind", list(ReviewKind))
def test_the_real_label_studio_accepts_each_generated_config(
    kind: ReviewKind, label_studio: object, project_title: str
) -> None:
    from label_studio_sdk import LabelStudio

    assert isinstance(label_studio, LabelStudio)
    config = render_label_config(kind)
    project = label_studio.projects.create(title=project_title, label_config=config)
    label_studio.projects.import_tasks(id=project.id, request=[{"data": _task(kind)}])
    stored = label_studio.projects.get(id=project.id)
    assert kind_of_config(stored.label_config or "") is kind
    assert stored.task_number == 1
