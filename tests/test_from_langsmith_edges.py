"""Per-run problems become skips with a reason; odd text is cleaned, never crashes the sync."""

from __future__ import annotations

import json
from typing import Any

from tracetune.sync.langsmith.from_langsmith import MAX_TEXT_CHARS, Skip, convert_run
from tracetune.sync.langsmith.redaction import safe_metadata


def _run(**overrides: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "id": "00000000-0000-0000-0000-000000000001",
        "trace_id": "00000000-0000-0000-0000-000000000001",
        "name": "qa",
        "run_type": "chain",
        "start_time": "2026-11-01T10:00:00",
        "end_time": "2026-11-01T10:00:02",
        "inputs": {"question": "What is Acme?"},
        "outputs": {"answer": "A docs platform."},
        "error": None,
        "extra": {"metadata": {"user_tier": "pro"}},
        "tags": ["prod"],
    }
    run.update(overrides)
    return run


def test_a_free_form_chain_becomes_a_two_message_conversation() -> None:
    conversation = convert_run(_run())
    assert not isinstance(conversation, Skip)
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("user", "What is Acme?"),
        ("assistant", "A docs platform."),
    ]
    assert conversation.source_shape == "free_form"
    assert conversation.metadata["user_tier"] == "pro"
    assert conversation.metadata["tags"] == "prod"


def test_errored_runs_are_skipped_with_a_reason() -> None:
    assert convert_run(_run(error="Timeout", outputs=None)) == Skip(
        "00000000-0000-0000-0000-000000000001", "run failed with an error"
    )


def test_runs_still_in_progress_are_skipped_so_a_later_sync_picks_them_up() -> None:
    result = convert_run(_run(outputs=None, end_time=None))
    assert isinstance(result, Skip) and result.reason == "run still in progress"


def test_an_empty_answer_is_skipped() -> None:
    result = convert_run(_run(outputs={"answer": ""}))
    assert isinstance(result, Skip)
    assert result.reason in ("empty answer", "unknown run shape")


def test_a_huge_answer_is_skipped_instead_of_flooding_label_studio() -> None:
    result = convert_run(_run(outputs={"answer": "x" * (1024 * 1024)}))
    assert result == Skip(_run()["id"], f"text longer than {MAX_TEXT_CHARS} characters")


def test_an_unknown_shape_is_skipped() -> None:
    result = convert_run(_run(inputs={"blob": {"a": 1}, "other": 2}, outputs={"x": [1, 2]}))
    assert isinstance(result, Skip) and result.reason == "unknown run shape"


def test_a_run_without_id_is_malformed() -> None:
    assert convert_run(_run(id=None)) == Skip("", "malformed run: no id")


def test_lone_surrogates_from_bad_bytes_become_replacement_characters() -> None:
    broken = json.loads('"caf\\udce9 ok"')
    conversation = convert_run(_run(outputs={"answer": broken}))
    assert not isinstance(conversation, Skip)
    assert conversation.answer == "caf\ufffd ok"
    conversation.answer.encode("utf-8")


def test_openai_tool_calls_and_tool_messages_keep_their_order() -> None:
    run = _run(
        run_type="llm",
        inputs={
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            ]
        },
        outputs={"choices": [{"message": {"role": "assistant", "content": "It is 18C."}}]},
    )
    conversation = convert_run(run)
    assert not isinstance(conversation, Skip)
    assert [m.role for m in conversation.messages] == ["user", "assistant", "tool", "assistant"]
    call = conversation.messages[1].tool_calls
    assert call is not None and call[0].name == "weather" and call[0].id == "call_1"
    assert conversation.messages[2].tool_call_id == "call_1"
    assert conversation.source_shape == "openai_chat"


def test_metadata_never_carries_credentials() -> None:
    run = _run(extra={"metadata": {"api_key": "sk-secret", "Authorization": "Bearer x", "ok": 1}})
    kept = safe_metadata(run)
    assert "api_key" not in kept and "Authorization" not in kept
    assert kept["ok"] == 1


def test_an_anthropic_user_turn_with_tool_results_and_text_becomes_tool_messages_then_text() -> (
    None
):
    from tracetune.sync.langsmith.messages import messages_from_any

    turn = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "content": [{"type": "text", "text": "0"}],
            },
            {"type": "text", "text": "Also, are you open Sunday?"},
        ],
    }
    found = messages_from_any(turn)
    assert [(m.role, m.content, m.tool_call_id) for m in found] == [
        ("tool", "12", "toolu_1"),
        ("tool", "0", "toolu_2"),
        ("user", "Also, are you open Sunday?", None),
    ]


def test_responses_items_join_calls_to_their_turn_and_drop_reasoning_and_builtin_calls() -> None:
    from tracetune.sync.langsmith.messages import response_items

    found = response_items(
        [
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "hmm"}],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking."}],
            },
            {"type": "function_call", "call_id": "c1", "name": "slots", "arguments": "{}"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "function_call", "call_id": "c2", "name": "book", "arguments": "{}"},
        ]
    )
    assert len(found) == 1
    assert found[0].content == "Checking." and [c.id for c in found[0].tool_calls or []] == [
        "c1",
        "c2",
    ]


def test_a_responses_run_whose_output_is_only_reasoning_is_an_empty_answer() -> None:
    run = _run(
        inputs={"input": "Hi", "model": "o4-mini"},
        outputs={"object": "response", "output": [{"type": "reasoning", "summary": []}]},
        run_type="llm",
    )
    assert convert_run(run) == Skip(run["id"], "empty answer")


def test_graph_state_rules_drop_echoes_and_prefer_answer_words() -> None:
    from tracetune.sync.langsmith.free_form import state_input, state_output

    inputs = {"customerEmailText": "My order never came.", "order_id": "A-1"}
    outputs = {**inputs, "sentiment": "negative", "final_reply": "Sorry! A new one ships today."}
    assert state_input(inputs) == "My order never came."
    assert state_output(inputs, outputs) == ("Sorry! A new one ships today.", True)
    echo_only = {"text": "spam?", "label": "spam"}
    assert state_output({"text": "spam?"}, echo_only) == ("spam", False)  # not the echoed text


def test_built_in_tools_are_not_declared_and_anthropic_tools_take_the_openai_shape() -> None:
    from tracetune.sync.langsmith.tools import normalise_tools

    tools = normalise_tools(
        [
            {"type": "web_search_20250305", "name": "web_search"},
            {"type": "web_search_preview"},
            {"name": "stock", "description": "Units.", "input_schema": {"type": "object"}},
        ]
    )
    assert tools == [
        {
            "type": "function",
            "function": {
                "name": "stock",
                "description": "Units.",
                "parameters": {"type": "object"},
            },
        }
    ]
