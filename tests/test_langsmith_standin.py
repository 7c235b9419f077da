"""The LangSmith stand-in is faithful to what the real `langsmith` SDK sends and reads.

Every test drives the unmodified SDK (or LangChain's tracer) against the stand-in and checks
what comes back through the SDK's own read methods, so a stand-in that drifts from the SDK's
wire format fails here before it misleads the sync tests.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import langsmith
import pytest
import requests
from langchain_core.language_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.tracers.langchain import wait_for_all_tracers
from langsmith import traceable
from langsmith.utils import LangSmithAuthError, LangSmithError, LangSmithNotFoundError
from standins.langsmith import LangSmithStandIn, RunStore

# Loaded by tests/conftest.py too; named here so `--noconftest` runs still get the fixtures.
pytest_plugins = ["plugins.langsmith_standin"]

pytestmark = [
    pytest.mark.filterwarnings("ignore:list_runs\\(\\) is deprecated"),
    pytest.mark.filterwarnings("ignore:read_run\\(\\) is deprecated"),
]

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
SHAPES = (
    "langchain_chat", "openai_wrapped", "completion_llm", "traceable_chain", "tool_calling",
    "experiments", "malformed",
)  # fmt: skip
SAMPLE = Path(__file__).parents[1] / "sync" / "data" / "sample_runs.jsonl"
SAMPLE_FEEDBACK = SAMPLE.with_name("sample_feedback.jsonl")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def client(langsmith_standin: LangSmithStandIn) -> Iterator[langsmith.Client]:
    sdk = langsmith.Client(api_url=langsmith_standin.url, api_key=langsmith_standin.api_key)
    yield sdk
    sdk.flush()


def names(runs: Any) -> set[str]:
    return {run.name for run in runs}


def queries(standin: LangSmithStandIn, path: str) -> int:
    return sum(1 for _, seen, _ in standin.requests if seen == path)


# --- writing runs ------------------------------------------------------------------------------


def test_traceable_runs_come_back_with_their_fields(
    client: langsmith.Client, langsmith_project: Callable[[str], str]
) -> None:
    project = langsmith_project("traceable")

    @traceable(run_type="retriever")
    def find_docs(query: str) -> list[dict[str, Any]]:
        return [{"page_content": f"About {query}", "metadata": {"source": "keys.md"}}]

    @traceable(name="answer_question", tags=["docs"], metadata={"tier": "pro"})
    def answer(question: str) -> dict[str, str]:
        docs = find_docs(question)
        return {"answer": docs[0]["page_content"]}

    with langsmith.tracing_context(enabled=True, project_name=project, client=client):
        answer("API keys")
    client.flush()

    runs = {run.name: run for run in client.list_runs(project_name=project)}
    root, child = runs["answer_question"], runs["find_docs"]
    assert set(runs) == {"answer_question", "find_docs"}
    assert (root.run_type, child.run_type) == ("chain", "retriever")
    assert root.inputs == {"question": "API keys"}
    assert root.outputs == {"answer": "About API keys"}
    assert child.outputs == {
        "output": [{"page_content": "About API keys", "metadata": {"source": "keys.md"}}]
    }
    assert root.parent_run_id is None and child.parent_run_id == root.id
    assert root.trace_id == child.trace_id == root.id
    assert child.dotted_order.startswith(root.dotted_order + ".")
    assert child.parent_run_ids == [root.id]
    assert root.tags == ["docs"] and root.metadata["tier"] == "pro"
    assert root.status == child.status == "success"
    assert root.start_time <= child.start_time <= child.end_time <= root.end_time
    assert root.session_id == client.read_project(project_name=project).id


def test_create_and_update_run_without_batching(
    langsmith_standin: LangSmithStandIn, langsmith_project: Callable[[str], str]
) -> None:
    """`auto_batch_tracing=False` sends `POST /runs` and `PATCH /runs/{id}` one by one."""
    sdk = langsmith.Client(
        api_url=langsmith_standin.url,
        api_key=langsmith_standin.api_key,
        auto_batch_tracing=False,
    )
    project = langsmith_project("plain")
    parent, child = uuid.uuid4(), uuid.uuid4()
    before = (queries(langsmith_standin, "/runs"), queries(langsmith_standin, f"/runs/{parent}"))
    sdk.create_run("plan", {"goal": "ship"}, "chain", id=parent, project_name=project)
    sdk.create_run("step", {"n": 1}, "tool", id=child, parent_run_id=parent, project_name=project)
    sdk.update_run(child, outputs={"done": True}, end_time=T0 + timedelta(days=400))
    sdk.update_run(parent, error="ValueError: no", end_time=T0 + timedelta(days=400))

    after = (queries(langsmith_standin, "/runs"), queries(langsmith_standin, f"/runs/{parent}"))
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
    plan, step = sdk.read_run(parent), sdk.read_run(child)
    assert step.trace_id == plan.trace_id == parent
    assert step.dotted_order.startswith(plan.dotted_order + ".")
    assert step.outputs == {"done": True} and step.status == "success"
    assert plan.error == "ValueError: no" and plan.status == "error"
    assert plan.child_run_ids == [child]
    roots = list(sdk.list_runs(project_name=project, is_root=True))
    assert [run.id for run in roots] == [parent]


@pytest.mark.parametrize(
    ("multipart", "compression", "endpoint", "encoding"),
    [
        (True, True, "/runs/multipart", "zstd"),
        (True, False, "/runs/multipart", None),
        (False, False, "/runs/batch", None),
    ],
    ids=["multipart-zstd", "multipart", "batch"],
)
def test_every_ingest_endpoint_stores_posts_and_patches(
    monkeypatch: pytest.MonkeyPatch,
    multipart: bool,
    compression: bool,
    endpoint: str,
    encoding: str | None,
) -> None:
    """`/info` steers the SDK to multipart (zstd when installed) or batch; all three work."""
    if compression:
        pytest.importorskip("zstandard")
    monkeypatch.setenv("LANGSMITH_DISABLE_RUN_COMPRESSION", str(not compression).lower())
    langsmith.utils.get_env_var.cache_clear()
    with LangSmithStandIn(api_key="ingest-key", multipart=multipart) as standin:
        sdk = langsmith.Client(api_url=standin.url, api_key="ingest-key")
        if compression:  # the SDK's tracing thread turns compression on after reading /info
            deadline = time.monotonic() + 10
            while sdk.compressed_traces is None and time.monotonic() < deadline:
                time.sleep(0.01)

        @traceable
        def outer(x: int) -> int:
            return inner(x) + 1

        @traceable
        def inner(x: int) -> int:
            return x * 2

        with langsmith.tracing_context(enabled=True, project_name="ingest", client=sdk):
            outer(20)
        sdk.flush()
        runs = {run.name: run for run in sdk.list_runs(project_name="ingest")}
        assert {name: run.outputs for name, run in runs.items()} == {
            "outer": {"output": 41},
            "inner": {"output": 40},
        }
        assert all(run.end_time is not None for run in runs.values())
        sent = [(path, seen) for _, path, seen in standin.requests if path.startswith("/runs/")]
        assert (endpoint, encoding) in sent
    langsmith.utils.get_env_var.cache_clear()


def test_patches_that_arrive_before_their_run_are_applied_when_it_does() -> None:
    store = RunStore()
    run_id = str(uuid.uuid4())
    store.ingest(patches=[{"id": run_id, "outputs": {"answer": "late"}, "end_time": T0}])
    assert store.runs() == []
    store.ingest(posts=[{"id": run_id, "name": "r", "run_type": "chain", "start_time": T0}])
    (run,) = store.runs("default")
    assert run["outputs"] == {"answer": "late"} and run["status"] == "success"
    assert store.get_run(run_id)["end_time"] == "2026-03-02T09:00:00.000000"


def test_langchain_tracer_into_the_env_project(langsmith_env: dict[str, str]) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer briefly."), MessagesPlaceholder("history"), ("human", "{q}")]
    )
    reply = AIMessage(
        "Paris.", usage_metadata={"input_tokens": 12, "output_tokens": 2, "total_tokens": 14}
    )
    chain = prompt | FakeMessagesListChatModel(responses=[reply])
    chain.invoke({"history": [HumanMessage("hi"), AIMessage("hello")], "q": "Capital?"})
    wait_for_all_tracers()

    sdk = langsmith.Client()
    runs = {
        run.run_type: run for run in sdk.list_runs(project_name=langsmith_env["LANGSMITH_PROJECT"])
    }
    assert set(runs) == {"chain", "prompt", "llm"}
    llm = runs["llm"]
    roles = [m["kwargs"]["type"] for m in llm.inputs["messages"][0]]
    assert roles == ["system", "human", "ai", "human"]
    assert llm.outputs["generations"][0][0]["text"] == "Paris."
    assert (llm.total_tokens, runs["chain"].total_tokens, runs["prompt"].total_tokens) == (
        14,
        14,
        0,
    )
    assert runs["chain"].parent_run_id is None


def test_env_reaches_a_subprocess(langsmith_env: dict[str, str]) -> None:
    """The variables `langsmith_env` returns are enough for a child process to trace."""
    code = textwrap.dedent(
        """
        from langsmith import traceable

        @traceable
        def greet(name):
            return {"output": f"hello {name}"}

        greet("subprocess")
        """
    )
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **langsmith_env}, check=True)
    sdk = langsmith.Client()
    (run,) = sdk.list_runs(project_name=langsmith_env["LANGSMITH_PROJECT"])
    assert (run.name, run.outputs) == ("greet", {"output": "hello subprocess"})


# --- reading runs ------------------------------------------------------------------------------


def test_pagination_returns_every_run_exactly_once(
    langsmith_standin: LangSmithStandIn,
    client: langsmith.Client,
    langsmith_project: Callable[[str], str],
) -> None:
    project = langsmith_project("pages")
    runs = []
    for i in range(300):
        run_id = str(uuid.uuid4())
        started = T0 + timedelta(seconds=i // 3)  # three runs share each start time
        runs.append(
            {
                "id": run_id,
                "trace_id": run_id,
                "dotted_order": f"{started:%Y%m%dT%H%M%S%fZ}{run_id}",
                "session_name": project,
                "name": f"run-{i}",
                "run_type": "chain",
                "start_time": started,
                "end_time": started + timedelta(seconds=1),
                "inputs": {"i": i},
            }
        )
    expected = {run["id"] for run in runs}  # before the SDK turns the ids into UUIDs in place
    client.multipart_ingest(create=runs)
    client.flush()
    before = queries(langsmith_standin, "/runs/query")

    listed = [run.id for run in client.list_runs(project_name=project)]
    assert len(listed) == 300 and {str(i) for i in listed} == expected
    assert queries(langsmith_standin, "/runs/query") - before == 4  # 3 full pages, 1 empty
    ascending = list(client.list_runs(project_name=project, order="asc"))
    assert [run.start_time for run in ascending] == sorted(run.start_time for run in ascending)
    assert [run.id for run in ascending] == listed[::-1]
    assert len(list(client.list_runs(project_name=project, limit=150))) == 150


def test_runs_of_several_projects_merge_in_time_order(
    langsmith_standin: LangSmithStandIn,
    client: langsmith.Client,
    langsmith_project: Callable[[str], str],
) -> None:
    projects = [langsmith_project("a"), langsmith_project("b")]
    for offset, project in enumerate(projects):
        starts = [T0 + timedelta(minutes=2 * i + offset) for i in range(120)]
        langsmith_standin.store.add_runs(
            ({"name": "r", "run_type": "chain", "start_time": start} for start in starts),
            project=project,
        )
    listed = list(client.list_runs(project_name=projects))
    assert len(listed) == 240
    assert [run.start_time for run in listed] == sorted(
        (r.start_time for r in listed), reverse=True
    )


@pytest.fixture(scope="module")
def filter_project(langsmith_standin: LangSmithStandIn) -> dict[str, Any]:
    """Four root runs and one child with known tags, metadata, times, tokens and feedback."""
    sdk = langsmith.Client(api_url=langsmith_standin.url, api_key=langsmith_standin.api_key)
    project = f"tt-filters-{uuid.uuid4().hex[:8]}"
    ids = {name: uuid.uuid4() for name in ("alpha", "alpha-llm", "beta", "gamma", "delta")}

    def run(name: str, run_type: str, start: timedelta, latency: float | None, **fields: Any):
        started = T0 + start
        ended = None if latency is None else started + timedelta(seconds=latency)
        sdk.create_run(
            name, fields.pop("inputs", {"question": name}), run_type, id=ids[name],
            project_name=project, start_time=started, end_time=ended, **fields,
        )  # fmt: skip

    usage = {"input_tokens": 100, "output_tokens": 50, "total_tokens": 150}
    run("alpha", "chain", timedelta(0), 1.0, tags=["prod", "beta"],
        extra={"metadata": {"user": "u1", "tier": "pro"}}, outputs={"answer": "ok"})  # fmt: skip
    run("alpha-llm", "llm", timedelta(seconds=0.2), 0.5, parent_run_id=ids["alpha"],
        outputs={"usage_metadata": usage, "choices": []})  # fmt: skip
    run("beta", "llm", timedelta(hours=1), 3.0, tags=["prod"], error="Timeout talking to model",
        extra={"metadata": {"user": "u2", "tier": "free"}})  # fmt: skip
    run("gamma", "retriever", timedelta(hours=2), 6.0,
        inputs={"query": "How do I rotate API keys?"}, outputs={"documents": []},
        extra={"metadata": {"user": "u3", "tier": "u1"}})  # fmt: skip
    run("delta", "chain", timedelta(hours=3), None, tags=["beta"],
        extra={"metadata": {"user": "u2"}})  # fmt: skip
    session = sdk.read_project(project_name=project).id
    sdk.create_feedback(
        ids["alpha"], key="user_score", score=1, comment="great", session_id=session
    )
    sdk.create_feedback(ids["beta"], key="user_score", score=0, session_id=session)
    sdk.create_feedback(ids["gamma"], key="user_score", score=True, session_id=session)
    sdk.create_feedback(ids["gamma"], key="correctness", score=0.4, session_id=session)
    return {"client": sdk, "project": project, "ids": ids}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('eq(name, "alpha")', {"alpha"}),
        ('neq(run_type, "chain")', {"alpha-llm", "beta", "gamma"}),
        ('eq(status, "error")', {"beta"}),
        ('eq(status, "pending")', {"delta"}),
        ('eq(status, "success")', {"alpha", "alpha-llm", "gamma"}),
        ("gt(latency, 2)", {"beta", "gamma"}),
        ('gte(latency, "3s")', {"beta", "gamma"}),
        ('lt(latency, "600ms")', {"alpha-llm"}),
        ("lte(latency, 1)", {"alpha", "alpha-llm"}),
        ("gt(total_tokens, 100)", {"alpha", "alpha-llm"}),
        ("eq(total_tokens, 0)", {"beta", "gamma", "delta"}),
        ('gte(start_time, "2026-03-02T10:00:00Z")', {"beta", "gamma", "delta"}),
        ('lt(start_time, "2026-03-02T10:00:00+00:00")', {"alpha", "alpha-llm"}),
        ('has(tags, "beta")', {"alpha", "delta"}),
        ('in(run_type, ["llm", "retriever"])', {"alpha-llm", "beta", "gamma"}),
        ('search("ROTATE api")', {"gamma"}),
        ('and(has(tags, "prod"), gt(latency, 2))', {"beta"}),
        ('or(eq(name, "alpha"), eq(name, "delta"))', {"alpha", "delta"}),
        ('not(eq(run_type, "chain"))', {"alpha-llm", "beta", "gamma"}),
        ("neq(error, null)", {"beta"}),
        ("eq(is_root, false)", {"alpha-llm"}),
        ('eq(metadata_key, "tier")', {"alpha", "beta", "gamma"}),
        ('and(eq(metadata_key, "user"), eq(metadata_value, "u1"))', {"alpha"}),
        ('and(in(metadata_key, ["user", "tier"]), eq(metadata_value, "u1"))', {"alpha", "gamma"}),
        ('has(metadata, \'{"tier": "free"}\')', {"beta"}),
        ('and(eq(feedback_key, "user_score"), eq(feedback_score, 1))', {"alpha", "gamma"}),
        ('and(eq(feedback_key, "user_score"), lt(feedback_score, 0.5))', {"beta"}),
        ('and(eq(feedback_key, "correctness"), gte(feedback_score, 0.5))', set()),
        ('eq(feedback_key, "correctness")', {"gamma"}),
    ],
)
def test_filter_language(filter_project: dict[str, Any], query: str, expected: set[str]) -> None:
    sdk, project = filter_project["client"], filter_project["project"]
    assert names(sdk.list_runs(project_name=project, filter=query)) == expected


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"run_type": "llm"}, {"alpha-llm", "beta"}),
        ({"is_root": True}, {"alpha", "beta", "gamma", "delta"}),
        ({"error": True}, {"beta"}),
        ({"error": False}, {"alpha", "alpha-llm", "gamma", "delta"}),
        ({"start_time": T0 + timedelta(minutes=90)}, {"gamma", "delta"}),
        ({"end_time": T0 + timedelta(minutes=90)}, {"alpha", "alpha-llm", "beta"}),
        ({"trace_filter": 'eq(name, "alpha")'}, {"alpha", "alpha-llm"}),
        ({"is_root": True, "tree_filter": 'eq(run_type, "llm")'}, {"alpha", "beta"}),
    ],
)
def test_list_runs_arguments(
    filter_project: dict[str, Any], arguments: dict[str, Any], expected: set[str]
) -> None:
    sdk, project = filter_project["client"], filter_project["project"]
    assert names(sdk.list_runs(project_name=project, **arguments)) == expected


def test_list_runs_by_ids_trace_and_parent(filter_project: dict[str, Any]) -> None:
    sdk, ids = filter_project["client"], filter_project["ids"]
    assert names(sdk.list_runs(run_ids=[ids["beta"], ids["gamma"]])) == {"beta", "gamma"}
    assert names(sdk.list_runs(trace_id=ids["alpha"])) == {"alpha", "alpha-llm"}
    assert names(sdk.list_runs(parent_run_id=ids["alpha"])) == {"alpha-llm"}
    (alpha,) = sdk.list_runs(run_ids=[ids["alpha"]], select=["name", "feedback_stats"])
    assert alpha.feedback_stats["user_score"]["n"] == 1
    assert alpha.inputs == {} and alpha.outputs is None  # not selected


@pytest.mark.parametrize(
    "query",
    [
        'eq(name, "alpha"',
        'frobnicate(name, "x")',
        'eq(colour, "red")',
        'gt(latency, "soon")',
        "and()",
        'eq(name, "a") eq(name, "b")',
        "name",
    ],
)
def test_invalid_filters_are_refused_with_400(filter_project: dict[str, Any], query: str) -> None:
    sdk, project = filter_project["client"], filter_project["project"]
    with pytest.raises(LangSmithError, match="400") as raised:
        list(sdk.list_runs(project_name=project, filter=query))
    assert "Invalid filter" in str(raised.value)


def test_ten_thousand_runs_page_through_quickly(
    langsmith_standin: LangSmithStandIn,
    client: langsmith.Client,
    langsmith_project: Callable[[str], str],
) -> None:
    project = langsmith_project("10k")
    session = langsmith_standin.store.create_project(project)
    runs = []
    for i in range(10_000):
        run_id = str(uuid.UUID(int=uuid.uuid4().int))
        started = T0 + timedelta(seconds=i)
        runs.append(
            {
                "id": run_id,
                "name": "ChatOpenAI",
                "run_type": "llm",
                "session_id": session,
                "start_time": started.isoformat(),
                "end_time": (started + timedelta(seconds=1)).isoformat(),
                "inputs": {"messages": [{"role": "user", "content": f"question {i}"}]},
                "outputs": {"choices": [{"message": {"role": "assistant", "content": "ok"}}]},
            }
        )
    started = time.perf_counter()
    langsmith_standin.store.add_runs(runs)
    listed = list(client.list_runs(project_name=project, is_root=True, error=False))
    elapsed = time.perf_counter() - started
    assert len({run.id for run in listed}) == 10_000
    assert elapsed < 20, f"10,000 runs took {elapsed:.1f} s"


# --- reading runs through v2: `runs.query()` ---------------------------------------------------

EARLY = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def api(langsmith_standin: LangSmithStandIn) -> langsmith.Langsmith:
    """The SDK's generated v2 client, without retries so that refusals come back at once."""
    return langsmith.Langsmith(
        api_key=langsmith_standin.api_key, base_url=langsmith_standin.url, max_retries=0
    )


def project_id(sdk: langsmith.Client, name: str) -> str:
    return str(sdk.read_project(project_name=name).id)


def v2_names(api: langsmith.Langsmith, **arguments: Any) -> set[str]:
    return {run.name for run in api.runs.query(selects=["NAME"], **arguments) if run.name}


def test_v2_pages_through_every_run_once_newest_first(
    langsmith_standin: LangSmithStandIn,
    api: langsmith.Langsmith,
    client: langsmith.Client,
    langsmith_project: Callable[[str], str],
) -> None:
    project = langsmith_project("v2-pages")
    session = langsmith_standin.store.create_project(project)
    starts = [T0 + timedelta(seconds=i // 2) for i in range(250)]  # two runs per start time
    ids = langsmith_standin.store.add_runs(
        [
            {"name": f"run-{i}", "run_type": "chain", "start_time": start}
            for i, start in enumerate(starts)
        ],
        project=project,
    )
    before = queries(langsmith_standin, "/api/v2/runs/query")
    v1_before = queries(langsmith_standin, "/runs/query")

    pager = api.runs.query(project_ids=[session], min_start_time=EARLY, page_size=100)
    runs = list(pager)
    assert len(runs) == 250 and {run.id for run in runs} == set(ids)
    assert queries(langsmith_standin, "/api/v2/runs/query") - before == 3  # 100 + 100 + 50
    assert (runs[0].name, runs[0].start_time) == (None, None)  # no selects: only `id`
    assert runs[0].id in {ids[248], ids[249]} and runs[-1].id in {ids[0], ids[1]}
    dated = list(
        api.runs.query(project_ids=[session], min_start_time=EARLY, selects=["START_TIME"])
    )
    assert [r.start_time for r in dated] == sorted((r.start_time for r in dated), reverse=True)
    assert queries(langsmith_standin, "/runs/query") == v1_before


def test_v2_reads_the_last_day_unless_told_otherwise(
    langsmith_standin: LangSmithStandIn,
    api: langsmith.Langsmith,
    langsmith_project: Callable[[str], str],
) -> None:
    project = langsmith_project("v2-window")
    session = langsmith_standin.store.create_project(project)
    now = datetime.now(UTC)
    langsmith_standin.store.add_runs(
        [
            {"name": "last week", "run_type": "chain", "start_time": now - timedelta(days=7)},
            {"name": "an hour ago", "run_type": "chain", "start_time": now - timedelta(hours=1)},
        ],
        project=project,
    )
    assert v2_names(api, project_ids=[session]) == {"an hour ago"}
    assert v2_names(api, project_ids=[session], min_start_time=now - timedelta(days=8)) == {
        "last week",
        "an hour ago",
    }
    two_hours_ago = now - timedelta(hours=2)
    assert v2_names(
        api, project_ids=[session], min_start_time=EARLY, max_start_time=two_hours_ago
    ) == {"last week"}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, {"alpha", "alpha-llm", "beta", "gamma", "delta"}),
        ({"run_type": "LLM"}, {"alpha-llm", "beta"}),
        ({"is_root": True}, {"alpha", "beta", "gamma", "delta"}),
        ({"is_root": False}, {"alpha-llm"}),
        ({"has_error": True}, {"beta"}),
        ({"has_error": False}, {"alpha", "alpha-llm", "gamma", "delta"}),
        ({"min_start_time": T0 + timedelta(minutes=90)}, {"gamma", "delta"}),
        ({"max_start_time": T0 + timedelta(hours=1)}, {"alpha", "alpha-llm"}),  # exclusive
        ({"filter": 'and(has(tags, "prod"), gt(latency, 2))'}, {"beta"}),
        ({"filter": 'and(eq(metadata_key, "user"), eq(metadata_value, "u2"))'}, {"beta", "delta"}),
        (
            {"filter": 'and(eq(feedback_key, "user_score"), gte(feedback_score, 1))'},
            {"alpha", "gamma"},
        ),
        ({"trace_filter": 'eq(name, "alpha")'}, {"alpha", "alpha-llm"}),
        ({"is_root": True, "tree_filter": 'eq(run_type, "llm")'}, {"alpha", "beta"}),
    ],
)
def test_v2_arguments(
    filter_project: dict[str, Any],
    api: langsmith.Langsmith,
    arguments: dict[str, Any],
    expected: set[str],
) -> None:
    session = project_id(filter_project["client"], filter_project["project"])
    window = {"min_start_time": EARLY, **arguments}
    assert v2_names(api, project_ids=[session], **window) == expected


def test_v2_by_ids_and_by_trace(filter_project: dict[str, Any], api: langsmith.Langsmith) -> None:
    ids, session = (
        filter_project["ids"],
        project_id(filter_project["client"], filter_project["project"]),
    )
    scope = {"project_ids": [session], "min_start_time": EARLY}
    chosen = [str(ids["beta"]), str(ids["gamma"])]
    assert v2_names(api, ids=chosen, **scope) == {"beta", "gamma"}
    assert v2_names(api, ids=chosen, run_type="LLM", **scope) == {"beta"}  # combined, unlike v1
    assert v2_names(api, trace_id=str(ids["alpha"]), **scope) == {"alpha", "alpha-llm"}


def test_v2_runs_carry_the_selected_properties_in_v2_shape(
    filter_project: dict[str, Any], api: langsmith.Langsmith
) -> None:
    sdk, ids = filter_project["client"], filter_project["ids"]
    session = project_id(sdk, filter_project["project"])
    selects = [
        "NAME", "RUN_TYPE", "STATUS", "START_TIME", "END_TIME", "LATENCY_SECONDS", "INPUTS",
        "OUTPUTS", "EXTRA", "METADATA", "TAGS", "PROJECT_ID", "TRACE_ID", "PARENT_RUN_IDS",
        "IS_ROOT", "TOTAL_TOKENS", "FEEDBACK_STATS", "INPUTS_PREVIEW", "TOTAL_COST",
    ]  # fmt: skip
    runs = {
        run.name: run
        for run in api.runs.query(project_ids=[session], min_start_time=EARLY, selects=selects)
    }
    alpha, child, gamma = runs["alpha"], runs["alpha-llm"], runs["gamma"]
    assert (alpha.run_type, alpha.status, child.run_type) == ("CHAIN", "SUCCESS", "LLM")
    assert runs["beta"].status == "ERROR" and runs["delta"].status == "PENDING"
    assert alpha.project_id == session and alpha.trace_id == child.trace_id == str(ids["alpha"])
    assert (alpha.parent_run_ids, child.parent_run_ids) == ([], [str(ids["alpha"])])
    assert (alpha.is_root, child.is_root) == (True, False)
    assert alpha.start_time == T0 and alpha.latency_seconds == 1.0
    assert alpha.inputs == {"question": "alpha"} and alpha.outputs == {"answer": "ok"}
    assert (alpha.metadata["user"], alpha.metadata["tier"]) == ("u1", "pro")
    assert alpha.metadata == alpha.extra["metadata"]
    assert alpha.tags == ["prod", "beta"] and alpha.inputs_preview == '{"question": "alpha"}'
    # Tokens are the run's own unless `include_subtree_usage` asks for the subtree's.
    assert (alpha.total_tokens, child.total_tokens, alpha.total_cost) == (0, 150, None)
    (summed,) = api.runs.query(
        project_ids=[session], min_start_time=EARLY, ids=[str(ids["alpha"])],
        selects=["TOTAL_TOKENS"], include_subtree_usage=True,
    )  # fmt: skip
    assert summed.total_tokens == 150
    scores = gamma.feedback_stats
    assert scores["correctness"].n == 1 and scores["correctness"].avg == 0.4
    assert (scores["user_score"].min, scores["user_score"].max) == (1.0, 1.0)
    assert scores["user_score"].stdev is None and scores["user_score"].sources == ["api"]


def test_v2_feedback_window_applies_to_feedback_conditions(
    filter_project: dict[str, Any], api: langsmith.Langsmith
) -> None:
    session = project_id(filter_project["client"], filter_project["project"])
    scope = {"project_ids": [session], "min_start_time": EARLY}
    rated = 'eq(feedback_key, "user_score")'
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert v2_names(api, filter=rated, max_feedback_modified_at=later, **scope) == {
        "alpha", "beta", "gamma",
    }  # fmt: skip
    assert v2_names(api, filter=rated, min_feedback_modified_at=later, **scope) == set()
    with pytest.raises(langsmith.BadRequestError, match="feedback condition"):
        api.runs.query(filter='eq(name, "alpha")', min_feedback_modified_at=later, **scope)


def test_v2_experiments_by_reference_dataset(
    langsmith_standin: LangSmithStandIn,
    client: langsmith.Client,
    api: langsmith.Langsmith,
    langsmith_project: Callable[[str], str],
) -> None:
    dataset = client.create_dataset(langsmith_project("v2-dataset"))
    (example,) = client.create_examples(dataset_id=dataset.id, examples=[{"inputs": {"q": "?"}}])[
        "example_ids"
    ]
    experiment = client.create_project(langsmith_project("v2-exp"), reference_dataset_id=dataset.id)
    client.create_run(
        "target", {"q": "?"}, "chain", project_name=experiment.name, reference_example_id=example
    )
    client.flush()
    (run,) = api.runs.query(
        reference_dataset_id=str(dataset.id), selects=["NAME", "REFERENCE_DATASET_ID", "PROJECT_ID"]
    )  # no window given: it starts with the dataset's first experiment
    assert (run.name, run.reference_dataset_id, run.project_id) == (
        "target", str(dataset.id), str(experiment.id),
    )  # fmt: skip
    assert (
        v2_names(api, reference_dataset_id=str(dataset.id), reference_examples=[str(uuid.uuid4())])
        == set()
    )


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        ({"page_size": 0}, 400, "page_size"),
        ({"page_size": 1001}, 400, "page_size"),
        ({"selects": ["NAME", "COLOUR"]}, 400, "unknown selects: COLOUR"),
        ({"run_type": "AGENT"}, 400, "run_type must be one of"),
        ({"filter": 'eq(colour, "red")'}, 400, "Invalid filter"),
        ({"cursor": "not-a-cursor"}, 400, "Invalid cursor"),
        ({"reference_dataset_id": str(uuid.UUID(int=7))}, 400, "exactly one of"),
        ({"ai_search": "runs that failed"}, 501, "not available"),
    ],
)
def test_v2_refusals(
    filter_project: dict[str, Any],
    api: langsmith.Langsmith,
    arguments: dict[str, Any],
    status: int,
    message: str,
) -> None:
    session = project_id(filter_project["client"], filter_project["project"])
    with pytest.raises(langsmith.APIStatusError, match=message) as raised:
        api.runs.query(project_ids=[session], **arguments)
    assert raised.value.status_code == status


def test_v2_needs_the_api_key(langsmith_standin: LangSmithStandIn) -> None:
    intruder = langsmith.Langsmith(api_key="lsv2_wrong", base_url=langsmith_standin.url)
    with pytest.raises(langsmith.AuthenticationError):
        intruder.runs.query(project_ids=[str(uuid.uuid4())])


def test_v2_switched_off_answers_404_like_an_older_langsmith() -> None:
    with LangSmithStandIn(api_key="old-key", runs_v2=False) as old:
        api = langsmith.Langsmith(api_key="old-key", base_url=old.url, max_retries=0)
        with pytest.raises(langsmith.NotFoundError):
            api.runs.query(project_ids=[str(uuid.uuid4())])
        sdk = langsmith.Client(api_url=old.url, api_key="old-key")
        assert sdk.info.version == "0.10.100"
        old.store.add_runs([{"name": "still readable", "run_type": "chain"}], project="p")
        assert names(sdk.list_runs(project_name="p")) == {"still readable"}


# --- errors ------------------------------------------------------------------------------------


def test_wrong_api_key_is_an_auth_error(langsmith_standin: LangSmithStandIn) -> None:
    intruder = langsmith.Client(api_url=langsmith_standin.url, api_key="lsv2_wrong")
    with pytest.raises(LangSmithAuthError):
        list(intruder.list_runs(project_name="anything"))
    with pytest.raises(LangSmithAuthError):
        intruder.create_dataset("not allowed")
    bare = requests.post(f"{langsmith_standin.url}/runs/query", json={}, timeout=10)
    assert (bare.status_code, bare.json()) == (401, {"detail": "Invalid token"})


def test_unknown_things_are_not_found(
    langsmith_standin: LangSmithStandIn, client: langsmith.Client
) -> None:
    with pytest.raises(LangSmithNotFoundError):
        list(client.list_runs(project_name="no such project"))
    with pytest.raises(LangSmithNotFoundError):
        client.read_project(project_id=uuid.uuid4())
    with pytest.raises(LangSmithNotFoundError):
        client.read_run(uuid.uuid4())
    with pytest.raises(LangSmithNotFoundError):
        client.read_dataset(dataset_name="no such dataset")
    assert client.has_project("no such project") is False
    headers = {"x-api-key": langsmith_standin.api_key}
    missing = requests.get(f"{langsmith_standin.url}/no/such/route", headers=headers, timeout=10)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})


# --- projects, datasets, examples, feedback ---------------------------------------------------


def test_projects_round_trip(
    client: langsmith.Client, langsmith_project: Callable[[str], str]
) -> None:
    name = langsmith_project("project")
    created = client.create_project(name, description="docs bot", metadata={"team": "docs"})
    read = client.read_project(project_name=name)
    assert (read.id, read.description, read.metadata) == (created.id, "docs bot", {"team": "docs"})
    with pytest.raises(LangSmithError, match="409"):
        client.create_project(name)
    assert client.create_project(name, upsert=True).id == created.id
    assert [p.id for p in client.list_projects(name_contains=name[-8:])] == [created.id]
    ended = T0 + timedelta(days=1)
    updated = client.update_project(created.id, description="docs bot v2", end_time=ended)
    # Like the real API's, the times come back naive (UTC); only `Run` makes them aware.
    assert (updated.description, updated.end_time) == ("docs bot v2", ended.replace(tzinfo=None))
    client.delete_project(project_id=created.id)
    assert client.has_project(name) is False


def test_datasets_and_examples_round_trip(
    langsmith_standin: LangSmithStandIn,
    client: langsmith.Client,
    langsmith_project: Callable[[str], str],
) -> None:
    name = langsmith_project("dataset")
    dataset = client.create_dataset(name, description="docs questions")
    assert client.read_dataset(dataset_name=name).id == dataset.id
    assert [d.id for d in client.list_datasets(dataset_name=name)] == [dataset.id]

    examples = [
        {"inputs": {"question": f"q{i}"}, "reference_outputs": {"answer": f"a{i}"}}
        for i in range(130)
    ]
    created = client.create_examples(dataset_id=dataset.id, examples=examples)
    single = client.create_example({"question": "q130"}, dataset_id=dataset.id, split="test")
    assert created["count"] == 130 and single.metadata["dataset_split"] == ["test"]
    assert queries(langsmith_standin, f"/v1/platform/datasets/{dataset.id}/examples") == 2

    listed = list(client.list_examples(dataset_name=name))
    assert len(listed) == 131 and len({e.id for e in listed}) == 131
    assert {e.inputs["question"]: e.outputs for e in listed}["q7"] == {"answer": "a7"}
    assert [e.id for e in client.list_examples(dataset_id=dataset.id, splits=["test"])] == [
        single.id
    ]
    assert client.read_dataset(dataset_id=dataset.id).example_count == 131

    experiment = client.create_project(langsmith_project("exp"), reference_dataset_id=dataset.id)
    client.create_run(
        "target", {"question": "q7"}, "chain", project_name=experiment.name,
        reference_example_id=listed[7].id, outputs={"answer": "a7?"},
    )  # fmt: skip
    (run,) = client.list_runs(reference_example_id=listed[7].id)
    assert (run.session_id, run.outputs) == (experiment.id, {"answer": "a7?"})
    assert [p.id for p in client.list_projects(reference_dataset_id=dataset.id)] == [experiment.id]
    client.delete_dataset(dataset_id=dataset.id)
    assert client.has_dataset(dataset_name=name) is False


def test_examples_through_the_legacy_endpoints(
    langsmith_standin: LangSmithStandIn, langsmith_project: Callable[[str], str]
) -> None:
    """Without the multipart flag in `/info`, the SDK uses `/examples/bulk` and `/examples`."""
    legacy = langsmith.Client(
        api_url=langsmith_standin.url, api_key=langsmith_standin.api_key, info={"version": "0.8"}
    )
    dataset = legacy.create_dataset(langsmith_project("legacy"))
    bulk_before = queries(langsmith_standin, "/examples/bulk")
    legacy.create_examples(
        dataset_id=dataset.id,
        examples=[{"inputs": {"q": "a"}, "reference_outputs": {"a": 1}}, {"inputs": {"q": "b"}}],
    )
    one = legacy.create_example({"q": "c"}, dataset_id=dataset.id, reference_outputs={"a": 3})
    assert queries(langsmith_standin, "/examples/bulk") == bulk_before + 1
    assert {e.inputs["q"]: e.outputs for e in legacy.list_examples(dataset_id=dataset.id)} == {
        "a": {"a": 1},
        "b": None,
        "c": {"a": 3},
    }
    assert legacy.read_example(one.id).inputs == {"q": "c"}


def test_feedback_round_trip(
    langsmith_standin: LangSmithStandIn,
    client: langsmith.Client,
    langsmith_project: Callable[[str], str],
) -> None:
    run_id = uuid.uuid4()
    project = client.create_project(langsmith_project("fb"))
    client.create_run("answer", {"question": "?"}, "chain", id=run_id, project_name=project.name)
    client.create_feedback(
        run_id, key="user_score", score=1, comment="Spot on", session_id=project.id
    )
    client.create_feedback(run_id, key="user_score", score=0, session_id=project.id)
    for i in range(110):
        client.create_feedback(run_id, key="load", score=i, session_id=project.id)
    # With a trace id the SDK queues feedback and sends it in the multipart stream.
    multipart_before = queries(langsmith_standin, "/runs/multipart")
    client.create_feedback(
        run_id, trace_id=run_id, key="thumbs", value="up", score=True, session_id=project.id
    )
    client.flush()
    assert queries(langsmith_standin, "/runs/multipart") == multipart_before + 1

    scores = list(client.list_feedback(run_ids=[run_id], feedback_key=["user_score"]))
    assert sorted((f.score, f.comment) for f in scores) == [(0, None), (1, "Spot on")]
    assert all(f.run_id == run_id and f.feedback_source.type == "api" for f in scores)
    assert all(f.session_id == project.id for f in scores)
    assert len(list(client.list_feedback(run_ids=[run_id]))) == 113
    (thumbs,) = client.list_feedback(run_ids=[run_id], feedback_key=["thumbs"])
    assert (thumbs.value, thumbs.score, thumbs.trace_id) == ("up", 1, run_id)
    assert client.read_feedback(thumbs.id).key == "thumbs"
    stats = client.read_run(run_id).feedback_stats
    assert {k: (v["n"], v["avg"]) for k, v in stats.items() if k != "load"} == {
        "user_score": (2, 0.5),
        "thumbs": (1, 1.0),
    }
    assert stats["user_score"]["comments"] == ["Spot on"]


# --- the committed fixtures -------------------------------------------------------------------

RUN_FILES = [FIXTURES / f"{shape}.jsonl" for shape in SHAPES] + [SAMPLE]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@functools.cache
def sample_runs() -> dict[str, dict[str, Any]]:
    """The bundled sample, parsed once for the tests that read it."""
    return {run["id"]: run for run in read_jsonl(SAMPLE)}


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: p.name)
def test_committed_runs_load_back_through_the_sdk(
    path: Path,
    langsmith_standin: LangSmithStandIn,
    client: langsmith.Client,
    langsmith_project: Callable[[str], str],
) -> None:
    """Fixture lines are runs as the SDK returns them: they load and read back unchanged."""
    lines = read_jsonl(path)
    project = langsmith_project(path.stem)
    ids = langsmith_standin.store.load_jsonl(path, project=project)
    back = {
        str(run.id): run.model_dump(mode="json") for run in client.list_runs(project_name=project)
    }
    assert len(ids) == len(lines) == len(back) > 0
    for original in lines:
        again = back[original["id"]]
        for field in ("name", "run_type", "inputs", "outputs", "error", "trace_id", "tags"):
            assert again[field] == original[field], (path.name, field)
        assert (again["parent_run_id"], again["start_time"]) == (
            original["parent_run_id"],
            original["start_time"],
        )


def test_feedback_fixtures_point_at_rated_root_runs() -> None:
    runs = {r["id"]: r for shape in SHAPES for r in read_jsonl(FIXTURES / f"{shape}.jsonl")}
    for path, known in ((FIXTURES / "feedback.jsonl", runs), (SAMPLE_FEEDBACK, sample_runs())):
        records = read_jsonl(path)
        assert records, path
        for record in records:
            run = known[record["run_id"]]
            assert run["parent_run_id"] is None
            assert run["feedback_stats"][record["key"]]["n"] >= 1


def test_experiment_fixtures_pair_runs_by_example() -> None:
    examples = {e["id"]: e for e in read_jsonl(FIXTURES / "experiments_examples.jsonl")}
    roots = [r for r in read_jsonl(FIXTURES / "experiments.jsonl") if r["parent_run_id"] is None]
    by_example: dict[str, list[dict[str, Any]]] = {}
    for root in roots:
        by_example.setdefault(root["reference_example_id"], []).append(root)
    assert set(by_example) == set(examples)
    for example_id, pair in by_example.items():
        assert len(pair) == 2 and len({run["session_id"] for run in pair}) == 2
        assert pair[0]["inputs"]["question"] == examples[example_id]["inputs"]["question"]
        assert pair[0]["inputs"]["question"] == pair[1]["inputs"]["question"]
        assert pair[0]["outputs"] != pair[1]["outputs"]


def test_bundled_sample_has_the_promised_mix() -> None:
    runs = sample_runs()
    roots = [r for r in runs.values() if r["parent_run_id"] is None]
    rated = {f["run_id"] for f in read_jsonl(SAMPLE_FEEDBACK)}
    starts = sorted(datetime.fromisoformat(r["start_time"]) for r in roots)
    assert 280 <= len(roots) <= 320 and len(runs) > len(roots)
    assert 0.35 <= len(rated) / len(roots) <= 0.45
    assert 0.02 <= sum(r["error"] is not None for r in roots) / len(roots) <= 0.05
    assert starts[-1] - starts[0] > timedelta(days=3)
    assert any(r["run_type"] == "retriever" for r in runs.values())
    assert SAMPLE.stat().st_size < 2_000_000


def test_large_output_run_is_about_one_megabyte(large_output_run: dict[str, Any]) -> None:
    assert len(large_output_run["outputs"]["answer"]) == 1_000_000
    assert large_output_run["extra"]["metadata"]["fixture_case"] == "1 MB output"
