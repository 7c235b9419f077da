"""Every LangSmith shape, on fixtures traced by the real SDK into the stand-in.

The fixtures (`tests/fixtures/runs/`, made by `tests/fixtures/generate_runs.py`) hold what
`Client.list_runs` returned for real LangChain runnables, `wrap_openai`, `@traceable`
functions, tool calling and experiments; these tests pin what each becomes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tracetune.sync.ingest.syncer import SyncPlan, plan_sync
from tracetune.sync.langsmith.file_source import RunFileSource
from tracetune.sync.langsmith.sources import BUNDLED_SAMPLE
from tracetune.sync.review_kinds import ReviewKind

RUNS = Path(__file__).parent / "fixtures" / "runs"


def _plan(name: str, **selection: object) -> SyncPlan:
    return plan_sync(RunFileSource(RUNS / name, **selection), since=None)  # type: ignore[arg-type]


def _shapes(plan: SyncPlan) -> Counter[str]:
    return Counter(task.data["source_shape"] for task in plan.tasks)


def test_openai_wrapped_runs_keep_roles_and_the_choice_as_answer() -> None:
    plan = _plan("openai_wrapped.jsonl")
    assert _shapes(plan) == {"openai_chat": len(plan.tasks)} and plan.tasks
    for task in plan.tasks:
        roles = [m["role"] for m in task.data["messages"]]
        assert roles[0] == "system" and roles[-1] == "assistant"
        assert task.data["messages"][-1].get("content") or task.data["messages"][-1]["tool_calls"]


def test_langchain_chat_model_runs_read_serialized_messages_and_generations() -> None:
    plan = _plan("langchain_chat.jsonl", run_type="llm", root_only=False)
    assert _shapes(plan) == {"langchain_chat": len(plan.tasks)} and plan.tasks
    multi_turn = max(plan.tasks, key=lambda t: len(t.data["messages"]))
    roles = [m["role"] for m in multi_turn.data["messages"]]
    assert roles[0] == "system"
    assert roles.count("user") >= 2 and roles[-1] == "assistant"


def test_completion_runs_become_prompt_and_completion() -> None:
    plan = _plan("completion_llm.jsonl", run_type="llm", root_only=False)
    assert _shapes(plan) == {"completion": len(plan.tasks)} and plan.tasks
    for task in plan.tasks:
        messages = task.data["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[0]["content"] and messages[1]["content"]


def test_traceable_chains_with_free_form_keys_and_retrieved_context() -> None:
    plan = _plan("traceable_chain.jsonl")
    assert plan.tally.skipped == {}
    by_name = {t.data["metadata"]["run_name"]: t.data for t in plan.tasks}
    assert by_name["support_bot"]["prompt"].startswith("What network access")
    assert by_name["lookup"]["answer"].startswith('{"plan": "Team"')
    rag = by_name["rag_answer"]
    assert rag["source_shape"] == "rag_chain"
    rag_plan = plan_sync(RunFileSource(RUNS / "traceable_chain.jsonl"), None, ReviewKind.RAG)
    rag_task = next(t for t in rag_plan.tasks if t.run_id == rag["run_id"])
    assert rag_task.data["context_docs"] and rag_task.data["context"]


def test_tool_calls_and_tool_messages_stay_in_order_with_matching_ids() -> None:
    plan = _plan("tool_calling.jsonl", run_type="llm", root_only=False)
    complete = [t for t in plan.tasks if any(m["role"] == "tool" for m in t.data["messages"])]
    assert {t.data["source_shape"] for t in complete} == {"langchain_chat", "openai_chat"}
    for task in complete:
        messages = task.data["messages"]
        call_index = next(i for i, m in enumerate(messages) if m.get("tool_calls"))
        tool = messages[call_index + 1]
        assert tool["role"] == "tool"
        assert tool["tool_call_id"] == messages[call_index]["tool_calls"][0]["id"]
        assert messages[-1]["role"] == "assistant" and messages[-1]["content"]


def test_two_experiments_on_one_dataset_become_preference_pairs() -> None:
    plan = _plan("experiments.jsonl")
    assert plan.kind is ReviewKind.PREFERENCE
    assert len(plan.tasks) == 4 and plan.tally.skipped == {}
    for task in plan.tasks:
        data = task.data
        assert data["project_a"] != data["project_b"]
        assert data["answer_a"] != data["answer_b"]
        assert task.run_id == "pair:" + ":".join(sorted((data["run_id_a"], data["run_id_b"])))


def test_malformed_runs_are_skipped_with_reasons() -> None:
    plan = _plan("malformed.jsonl")
    assert plan.tally.skipped == {
        "no inputs or outputs": 2,
        "run failed with an error": 1,
        "empty answer": 1,
        "unknown run shape": 1,
        "embedding run: a step of a chain, not a conversation": 1,
    }
    texts = " ".join(t.data["answer"] + t.data["prompt"] for t in plan.tasks)
    texts.encode("utf-8")  # bad bytes were replaced, nothing unencodable reaches Label Studio


def test_the_bundled_sample_converts_with_feedback_attached() -> None:
    source = RunFileSource(BUNDLED_SAMPLE, BUNDLED_SAMPLE.with_name("sample_feedback.jsonl"))
    plan = plan_sync(source, since=None)
    assert plan.tally.fetched >= 250
    assert set(plan.tally.skipped) == {"run failed with an error"}
    with_feedback = [t for t in plan.tasks if t.data["feedback"]]
    assert len(with_feedback) >= len(plan.tasks) // 4
    assert len({t.run_id for t in plan.tasks}) == len(plan.tasks)
