"""Today's shapes, on fixtures traced by the real libraries (tests/fixtures/generate_shapes.py).

Agents (`create_agent`, `create_react_agent`, a checkpointed thread), LangGraph `StateGraph`
state, the OpenAI Responses API and Anthropic Messages through the SDK wrappers, and images;
these tests pin what each becomes, what the model was offered as tools, and that LangGraph's
internal steps never become review tasks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tracetune.sync.ingest.planning import PlannedTask
from tracetune.sync.ingest.syncer import SyncPlan, plan_sync
from tracetune.sync.langsmith.file_source import RunFileSource
from tracetune.sync.langsmith.from_langsmith import GRAPH_STEP, TOOL_RUN

RUNS = Path(__file__).parent / "fixtures" / "runs"
NEW_SHAPES = ("agents", "langgraph_state", "openai_responses", "anthropic_messages", "vision")


def _plan(name: str, **selection: Any) -> SyncPlan:
    return plan_sync(RunFileSource(RUNS / f"{name}.jsonl", **selection), since=None)


def _roles(task: PlannedTask) -> list[str]:
    return [m["role"] for m in task.data["messages"]]


def _by_shape(plan: SyncPlan, shape: str) -> list[PlannedTask]:
    return [t for t in plan.tasks if t.data["source_shape"] == shape]


def _calls_answered_in_order(messages: list[dict[str, Any]]) -> None:
    """Each assistant tool call is followed by its tool result, matched by id."""
    for index, message in enumerate(messages):
        calls = message.get("tool_calls") or []
        results = messages[index + 1 : index + 1 + len(calls)]
        if calls and index + 1 < len(messages):
            assert [r["role"] for r in results] == ["tool"] * len(calls)
            assert [r["tool_call_id"] for r in results] == [c["id"] for c in calls]


def _texts(plan: SyncPlan) -> str:
    return json.dumps([t.data["messages"] for t in plan.tasks], ensure_ascii=False)


def _tool_names(task: PlannedTask) -> list[str]:
    return [tool["function"]["name"] for tool in task.data["tools"]]


def test_agent_roots_are_the_conversation_the_user_had() -> None:
    plan = _plan("agents")
    agents = _by_shape(plan, "agent")
    assert len(agents) == 5 and plan.tally.skipped == {TOOL_RUN: 1}
    for task in agents:
        roles = _roles(task)
        assert roles[0] == "system" and "support assistant" in task.data["messages"][0]["content"]
        assert roles[1] == "user" and roles[-1] == "assistant"
        assert task.data["messages"][-1]["content"]
        _calls_answered_in_order(task.data["messages"])
    first, parallel, react = agents[0], agents[1], agents[2]
    assert _roles(first) == ["system", "user", "assistant", "tool", "assistant"]
    assert _tool_names(first) == ["plan_limits", "workspace_usage"]
    assert first.data["tools"][0]["function"]["parameters"]["required"] == ["plan"]
    calls = parallel.data["messages"][2]["tool_calls"]
    assert [c["name"] for c in calls] == ["plan_limits", "workspace_usage"]
    assert _roles(parallel)[3:5] == ["tool", "tool"]
    # create_react_agent on ChatAnthropic: text and a tool_use block in one turn.
    assert react.data["messages"][2]["content"] == "Let me look that up."
    assert react.data["messages"][2]["tool_calls"][0]["name"] == "plan_limits"
    assert _tool_names(react) == ["plan_limits"]  # from Anthropic's input_schema shape


def test_a_checkpointed_thread_root_shows_the_whole_thread() -> None:
    threads = [
        t for t in _by_shape(_plan("agents"), "agent") if t.data["metadata"].get("thread_id")
    ]
    assert len(threads) == 2
    first, second = threads
    assert [m["content"] for m in second.data["messages"][: len(first.data["messages"])]] == [
        m["content"] for m in first.data["messages"]
    ]
    users = [m["content"] for m in second.data["messages"] if m["role"] == "user"]
    assert users == ["Hi, can you help with plans?", "And Business, vs Team?"]
    assert second.data["prompt"] == "And Business, vs Team?"


def test_with_all_runs_graph_steps_and_tools_are_skipped_and_model_calls_kept() -> None:
    plan = _plan("agents", root_only=False)
    assert "unknown run shape" not in plan.tally.skipped
    assert plan.tally.skipped[GRAPH_STEP] >= 10 and plan.tally.skipped[TOOL_RUN] == 6
    assert Counter(t.data["source_shape"] for t in plan.tasks) == {
        "agent": 5,
        "langchain_chat": 11,
    }
    for task in plan.tasks:  # no LangGraph Command is ever an answer
        assert '"goto"' not in task.data["answer"] and '"update"' not in task.data["answer"]
    bound = [t for t in plan.tasks if t.data["parallel_tool_calls"] is False]
    assert bound and all(_tool_names(t) == ["plan_limits"] for t in bound)


def test_state_graph_roots_take_input_and_answer_by_the_key_rules() -> None:
    plan = _plan("langgraph_state")
    graphs = {t.data["prompt"]: t.data for t in _by_shape(plan, "graph_state")}
    claim = graphs["A pipe burst and flooded my kitchen floor."]
    assert claim["answer"].startswith("Approve up to 2000 EUR")  # `decision`, not `category`
    ticket = graphs["Our scheduler is down since 9am."]
    assert ticket["answer"].startswith("Sorry about this. Priority high")  # `reply_draft`
    all_runs = _plan("langgraph_state", root_only=False)
    assert all_runs.tally.skipped == {GRAPH_STEP: 4}


def test_responses_api_runs() -> None:
    plan = _plan("openai_responses")
    responses = _by_shape(plan, "openai_responses")
    assert len(responses) == 7 and "unknown run shape" not in plan.tally.skipped
    by_prompt = {t.data["prompt"]: t for t in responses}
    plain = by_prompt["How do I deploy a flow?"].data["messages"]
    assert plain[0] == {
        "role": "system",
        "content": "You answer questions about the tide CLI in one sentence.",
    }
    assert plain[-1] == {
        "role": "assistant",
        "content": "Run `tide deploy` from the project folder.",
    }
    turns = by_prompt["Can I deploy to staging only?"]
    assert _roles(turns) == ["system", "user", "assistant", "user", "assistant"]
    seats = [t for t in responses if t.data["prompt"] == "How many seats does Team include?"]
    call, follow_up = seats
    assert call.data["messages"][-1]["tool_calls"][0]["name"] == "plan_limits"
    assert _roles(follow_up) == ["user", "assistant", "tool", "assistant"]
    _calls_answered_in_order(follow_up.data["messages"])
    assert follow_up.data["answer"] == "Team includes 25 seats."
    assert follow_up.data["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "plan_limits",
                "description": "Flow, worker and seat limits of a Tidewell plan.",
                "parameters": {
                    "type": "object",
                    "properties": {"plan": {"type": "string"}},
                    "required": ["plan"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
        }
    ]
    assert follow_up.data["parallel_tool_calls"] is False
    reasoning = by_prompt["Which time zone do schedules use?"]
    assert reasoning.data["answer"] == "Schedules are in UTC unless the flow sets `timezone`."
    assert "the docs say UTC default" not in _texts(plan)  # reasoning is never message text
    streamed = by_prompt["How long do retries wait?"]
    assert streamed.data["answer"] == "Retries wait 10 s, 20 s, then 40 s by default."
    via_langchain = _by_shape(plan, "langchain_chat")[0]
    assert via_langchain.data["answer"] == "Use `tide logs <run id>`."
    assert "the CLI command answers it" not in _texts(plan)


def test_anthropic_messages_runs() -> None:
    plan = _plan("anthropic_messages")
    messages = _by_shape(plan, "anthropic_messages")
    assert len(messages) == 7 and plan.tally.skipped == {TOOL_RUN: 1}
    by_prompt: dict[str, list[PlannedTask]] = {}
    for task in messages:
        by_prompt.setdefault(task.data["prompt"], []).append(task)
    plain = by_prompt["Where do I create an API token?"][0].data["messages"]
    assert plain[0] == {"role": "system", "content": "You are Tidewell's docs assistant."}
    cached = by_prompt["How often to rotate tokens?"][0].data["messages"][0]
    assert cached["content"] == (
        "You are Tidewell's docs assistant.\n"
        "Docs: API tokens are shown once; rotate them every 90 days."
    )
    call, follow_up = by_prompt["What are the Business plan limits?"]
    assert call.data["messages"][-1]["content"] == "I'll check the plan."
    assert json.loads(call.data["messages"][-1]["tool_calls"][0]["arguments"]) == {
        "plan": "Business"
    }
    assert _roles(follow_up) == ["user", "assistant", "tool", "assistant"]
    _calls_answered_in_order(follow_up.data["messages"])
    assert follow_up.data["messages"][2]["content"] == "Business: 500 flows, 100 workers"
    assert _tool_names(follow_up) == ["plan_limits"]
    assert follow_up.data["tools"][0]["function"]["parameters"]["required"] == ["plan"]
    assert follow_up.data["parallel_tool_calls"] is False  # disable_parallel_tool_use
    thinking = by_prompt["Can I limit how many runs of a flow overlap?"][0]
    assert thinking.data["answer"] == "Yes: set `concurrency: 5` on the flow."
    assert "answer with the setting" not in _texts(plan)
    streamed = by_prompt["How often do workers poll?"][0]
    assert streamed.data["answer"] == "Workers poll for work every 5 seconds by default."


@pytest.mark.parametrize("name", ["openai_responses", "anthropic_messages", "vision"])
def test_images_stay_images_shown_by_placeholder_and_listed(name: str) -> None:
    plan = _plan(name)
    with_images = [t for t in plan.tasks if t.data["images"]]
    assert with_images
    for task in with_images:
        user = next(m for m in task.data["messages"] if m.get("images"))
        assert user["role"] == "user"
        for image in user["images"]:
            assert image["url"].startswith(("data:image/png;base64,", "https://"))
            assert image["url"] not in user["content"]  # never turned into text
        assert task.data["images"] == [i["url"] for i in user["images"]]
        shown = next(d["content"] for d in task.data["dialogue"] if "[image: " in d["content"])
        assert "[image: image/png, 1 KB]" in shown or "[image: https://" in shown


def test_vision_runs_keep_text_and_every_image_form() -> None:
    plan = _plan("vision")
    urls = [url for t in plan.tasks for url in t.data["images"]]
    assert urls[0] == "https://docs.tidewell.example/img/run-graph.png"
    assert all(u.startswith("data:image/png;base64,iVBOR") for u in urls[1:]) and len(urls) == 3
    assert [t.data["prompt"] for t in plan.tasks] == [
        "Which task failed here?",
        "What screen is this?",
        "What does this error mean?",
    ]


def test_every_fixture_shape_converts_with_no_unknown_shape() -> None:
    for name in NEW_SHAPES:
        for root_only in (True, False):
            plan = _plan(name, root_only=root_only)
            assert plan.tasks, name
            assert "unknown run shape" not in plan.tally.skipped, (name, plan.tally.skipped)


#: Every conversational shape's fixture (not the malformed runs, nor the experiments, which
#: would make the whole file a preference review).
MIXED = (
    "langchain_chat", "openai_wrapped", "completion_llm", "traceable_chain", "tool_calling",
    *NEW_SHAPES,
)  # fmt: skip


def test_a_dry_run_of_a_mixed_file_of_every_shape_meets_no_unknown_shape(tmp_path: Path) -> None:
    mixed = tmp_path / "all_shapes.jsonl"
    mixed.write_bytes(b"".join((RUNS / f"{name}.jsonl").read_bytes() for name in MIXED))
    tracetune = str(Path(sys.executable).with_name("tracetune"))
    for extra in ([], ["--all-runs"]):
        result = subprocess.run(
            [tracetune, "sync", "--file", str(mixed), "--dry-run", "--json", *extra],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        skips = Counter(line["skip"] for line in lines if "skip" in line)
        shapes = Counter(line["data"]["source_shape"] for line in lines if "data" in line)
        assert "unknown run shape" not in skips, skips
        assert set(shapes) >= {
            "agent", "graph_state", "openai_responses", "anthropic_messages", "openai_chat",
            "langchain_chat", "completion", "free_form", "rag_chain",
        }, shapes  # fmt: skip
