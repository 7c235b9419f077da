"""The sync reading the LangSmith API through the real SDK, pointed at the stand-in.

Traces are written by real code through the real SDK (`@traceable`, `Client.create_run`,
`create_feedback`), then `tracetune sync` reads them back like it would from LangSmith:
through v2's `runs.query()`, or v1's `/runs/query` where the stand-in plays a LangSmith
without v2. The stand-in's request log shows which endpoint, and how many pages, were read.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import langsmith
import pytest
from label_studio_sdk import LabelStudio
from langsmith import traceable
from pydantic import SecretStr
from standins.langsmith import LangSmithStandIn
from typer.testing import CliRunner

from tracetune.sync.cli.app import app as tracetune_app
from tracetune.sync.errors import AuthenticationError, ServiceUnavailableError
from tracetune.sync.langsmith.api_source import LangSmithApiSource, RunSelection
from tracetune.sync.langsmith.client import LangSmithClients, langsmith_errors, make_client
from tracetune.sync.langsmith.file_source import RunFileSource
from tracetune.sync.langsmith.from_langsmith import Skip, convert_run
from tracetune.sync.langsmith.run_query import ROOT_FIELDS, RunQuery
from tracetune.sync.langsmith.run_reader import RunReader
from tracetune.sync.langsmith.runs_v1 import query_v1
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import LabelStudioServer, free_port

V2 = "/api/v2/runs/query"
V1 = "/runs/query"

TRACETUNE = str(Path(sys.executable).with_name("tracetune"))


_SDK_PREFIXES = ("LANGSMITH_", "LANGCHAIN_")


def _env(standin: LangSmithStandIn, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SDK_PREFIXES)}
    env.update(LANGSMITH_ENDPOINT=standin.url, LANGSMITH_API_KEY=standin.api_key, **extra)
    return env


def _tracetune(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACETUNE, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _client(standin: LangSmithStandIn) -> langsmith.Client:
    return langsmith.Client(api_url=standin.url, api_key=standin.api_key)


def _dry_run_lines(project: str, standin: LangSmithStandIn, *args: str) -> list[dict[str, Any]]:
    """`tracetune sync --dry-run --json` run in this process: the same command, no start-up."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(_SDK_PREFIXES)}
    env.update(LANGSMITH_ENDPOINT=standin.url, LANGSMITH_API_KEY=standin.api_key)
    command = ["sync", "--langsmith-project", project, "--dry-run", "--json", *args]
    result = CliRunner().invoke(tracetune_app, command, env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return [json.loads(line) for line in result.stdout.splitlines()]


def _dry_run_ids(project: str, standin: LangSmithStandIn, *args: str) -> set[str]:
    return {line["run_id"] for line in _dry_run_lines(project, standin, *args) if "data" in line}


def _requests(standin: LangSmithStandIn, path: str) -> int:
    return sum(1 for _, seen, _ in standin.requests if seen == path)


def _settings(standin: LangSmithStandIn) -> Settings:
    return Settings(langsmith_endpoint=standin.url, langsmith_api_key=SecretStr(standin.api_key))


@pytest.fixture
def traced_project(
    langsmith_standin: LangSmithStandIn,
    langsmith_project: Callable[[str], str],
    langsmith_env: dict[str, str],
) -> dict[str, Any]:
    """A docs assistant traced with `@traceable`: a RAG chain, tags, metadata, feedback, errors."""
    client = _client(langsmith_standin)
    project = langsmith_project("docs")

    @traceable(run_type="retriever", client=client, project_name=project)
    def retrieve(query: str) -> list[dict[str, Any]]:
        return [
            {"page_content": f"Docs about {query}.", "metadata": {"source": f"{query}.md"}},
            {"page_content": "General settings live under Settings.", "metadata": {}},
        ]

    @traceable(run_type="chain", name="answer_question", client=client, project_name=project)
    def answer_question(question: str) -> dict[str, str]:
        docs = retrieve(question.split()[-1].strip("?"))
        if "crash" in question:
            raise RuntimeError("the model timed out")
        return {"answer": f"See {docs[0]['metadata']['source']}: open Settings."}

    ids: dict[str, str] = {}
    cases = {
        "billing": ({"tags": ["prod"], "metadata": {"tier": "pro"}}),
        "webhooks": ({"tags": ["prod"], "metadata": {"tier": "free"}}),
        "exports": ({"tags": ["staging"], "metadata": {"tier": "pro"}}),
        "crash": ({"tags": ["prod"], "metadata": {"tier": "pro"}}),
    }
    for topic, extra in cases.items():
        run_id = uuid.uuid4()
        ids[topic] = str(run_id)
        with contextlib.suppress(RuntimeError):  # the "crash" run fails on purpose
            answer_question(
                f"How do I configure {topic}?", langsmith_extra={"run_id": run_id, **extra}
            )
    client.flush()
    session = client.read_project(project_name=project).id
    for topic, score, comment in (("billing", 1, "spot on"), ("webhooks", 0, "wrong page")):
        client.create_feedback(
            ids[topic], key="user_score", score=score, comment=comment, session_id=session
        )
    client.flush()
    return {"project": project, "ids": ids}


def test_selection_flags_pick_the_right_runs_through_v2(
    traced_project: dict[str, Any], langsmith_standin: LangSmithStandIn
) -> None:
    project, ids = traced_project["project"], traced_project["ids"]
    v1_before = _requests(langsmith_standin, V1)
    v2_before = _requests(langsmith_standin, V2)
    ok = {ids["billing"], ids["webhooks"], ids["exports"]}
    assert _dry_run_ids(project, langsmith_standin) == ok
    assert _dry_run_ids(project, langsmith_standin, "--tag", "staging") == {ids["exports"]}
    assert _dry_run_ids(project, langsmith_standin, "--metadata", "tier=free") == {ids["webhooks"]}
    thumbs_up = ("--feedback-key", "user_score", "--feedback-min", "1")
    assert _dry_run_ids(project, langsmith_standin, *thumbs_up) == {ids["billing"]}
    assert _dry_run_ids(project, langsmith_standin, "--feedback-key", "user_score") == {
        ids["billing"], ids["webhooks"],
    }  # fmt: skip
    assert _dry_run_ids(project, langsmith_standin, "--filter", 'eq(name, "nothing")') == set()
    assert _dry_run_ids(project, langsmith_standin, "--run-type", "chain") == ok
    assert _dry_run_ids(project, langsmith_standin, "--run-type", "llm") == set()
    assert _dry_run_ids(project, langsmith_standin, "--limit", "1") <= ok
    assert len(_dry_run_ids(project, langsmith_standin, "--limit", "1")) == 1
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert _dry_run_ids(project, langsmith_standin, "--since", future) == set()
    assert _dry_run_ids(project, langsmith_standin, "--since", past, "--until", future) == ok
    assert _dry_run_ids(project, langsmith_standin, "--until", past) == set()
    # Errors included: the failed run is read, then skipped with its reason.
    included = _dry_run_lines(project, langsmith_standin, "--errors", "include")
    assert {line["run_id"] for line in included} == ok | {ids["crash"]}
    # Child runs too: the four retriever runs come with the roots.
    everything = _dry_run_lines(project, langsmith_standin, "--all-runs")
    retrievers = _dry_run_lines(project, langsmith_standin, "--all-runs", "--run-type", "retriever")
    assert len(everything) == 3 + 4 and len(retrievers) == 4
    assert {line["run_id"] for line in retrievers} < {line["run_id"] for line in everything}
    assert _requests(langsmith_standin, V2) > v2_before
    assert _requests(langsmith_standin, V1) == v1_before  # v2 only: v1 was never asked


def test_errors_only_selects_failed_runs_which_are_then_skipped_with_a_reason(
    traced_project: dict[str, Any], langsmith_standin: LangSmithStandIn
) -> None:
    result = _tracetune(
        "sync", "--langsmith-project", traced_project["project"], "--errors", "only",
        "--dry-run", "--json", env=_env(langsmith_standin),
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [{"run_id": traced_project["ids"]["crash"], "skip": "run failed with an error"}]


@pytest.mark.integration
def test_sync_from_the_api_builds_a_rag_project_with_context_and_feedback(
    traced_project: dict[str, Any],
    langsmith_standin: LangSmithStandIn,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    project_title: str,
) -> None:
    env = _env(
        langsmith_standin,
        LABEL_STUDIO_URL=label_studio_server.url,
        LABEL_STUDIO_API_KEY=label_studio_server.token,
        REDIS_URL=redis_url,
    )
    args = ("sync", "-p", project_title, "--langsmith-project", traced_project["project"], "--json")
    first = json.loads(_tracetune(*args, env=env).stdout)
    assert first["kind"] == "rag_answer"
    assert (first["fetched"], first["imported"]) == (3, 3)

    tasks = {t.data["run_id"]: t.data for t in label_studio.tasks.list(project=first["project_id"])}
    billing = tasks[traced_project["ids"]["billing"]]
    assert billing["context_docs"][0] == {"source": "billing.md", "content": "Docs about billing."}
    assert billing["context_docs"][1]["source"] == "document 2"
    assert billing["answer"] == "See billing.md: open Settings."
    assert billing["feedback"][0]["comment"] == "spot on"
    assert "user_score=1" in billing["feedback_summary"]

    second = json.loads(_tracetune(*args, env=env).stdout)
    assert (second["imported"], second["already_present"]) == (0, 3)


def test_a_wrong_langsmith_key_is_one_line_and_exit_4(
    traced_project: dict[str, Any], langsmith_standin: LangSmithStandIn
) -> None:
    env = _env(langsmith_standin)
    env["LANGSMITH_API_KEY"] = "lsv2_pt_wrong"
    result = _tracetune(
        "sync", "--langsmith-project", traced_project["project"], "--dry-run", env=env
    )
    assert result.returncode == 4, result.stderr
    assert "refused the API key" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_langsmith_project_is_one_line_and_exit_5(
    langsmith_standin: LangSmithStandIn,
) -> None:
    result = _tracetune(
        "sync", "--langsmith-project", "no-such-project", "--dry-run", env=_env(langsmith_standin)
    )
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_langsmith_is_one_line_and_exit_3() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGSMITH_")}
    env.update(LANGSMITH_ENDPOINT=f"http://127.0.0.1:{free_port()}", LANGSMITH_API_KEY="x")
    result = _tracetune("sync", "--langsmith-project", "p", "--dry-run", env=env)
    assert result.returncode == 3, result.stderr
    assert "cannot reach LangSmith" in result.stderr


def test_a_missing_langsmith_key_is_a_configuration_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGSMITH_")}
    result = _tracetune("sync", "--langsmith-project", "p", "--dry-run", env=env)
    assert result.returncode == 2
    assert "LANGSMITH_API_KEY is not set" in result.stderr


def test_a_dataset_is_a_source_of_examples(
    langsmith_standin: LangSmithStandIn, langsmith_project: Callable[[str], str]
) -> None:
    client = _client(langsmith_standin)
    name = langsmith_project("dataset")
    dataset = client.create_dataset(name)
    client.create_examples(
        dataset_id=dataset.id,
        examples=[
            {
                "inputs": {"question": "What is SSO?"},
                "reference_outputs": {"answer": "Single sign-on."},
            },
            {
                "inputs": {"question": "Where are exports?"},
                "reference_outputs": {"answer": "Data > Export."},
            },
        ],
    )
    result = _tracetune(
        "sync", "--dataset", name, "--dry-run", "--json", env=_env(langsmith_standin)
    )
    assert result.returncode == 0, result.stderr
    answers = sorted(json.loads(line)["data"]["answer"] for line in result.stdout.splitlines())
    assert answers == ["Data > Export.", "Single sign-on."]


# --- the v2 path: pages, children per batch, streaming, limit ---------------------------------

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


def _rag_traces(count: int) -> list[dict[str, Any]]:
    """`count` traces, each a root chain and the retriever child whose document it used."""
    runs = []
    for i in range(count):
        root, child = str(uuid.uuid4()), str(uuid.uuid4())
        started = T0 + timedelta(seconds=10 * i)
        runs += [
            {
                "id": root, "trace_id": root, "name": "answer_question", "run_type": "chain",
                "start_time": started, "end_time": started + timedelta(seconds=2),
                "inputs": {"question": f"How do I set up integration {i}?"},
                "outputs": {"answer": f"Open Settings > Integrations > {i}."},
            },
            {
                "id": child, "trace_id": root, "parent_run_id": root, "name": "find_docs",
                "run_type": "retriever", "start_time": started + timedelta(milliseconds=300),
                "end_time": started + timedelta(milliseconds=800), "inputs": {"query": str(i)},
                "outputs": {"documents": [
                    {"page_content": f"Integration {i} lives under Settings.",
                     "metadata": {"source": f"integrations/{i}.md"}},
                ]},
            },
        ]  # fmt: skip
    return runs


@pytest.fixture
def rag_project(
    langsmith_standin: LangSmithStandIn, langsmith_project: Callable[[str], str]
) -> str:
    """1,050 RAG traces loaded straight into the stand-in (2,100 runs)."""
    project = langsmith_project("rag")
    langsmith_standin.store.add_runs(_rag_traces(1050), project=project)
    return project


def test_pages_stream_and_children_come_per_batch_of_roots(
    langsmith_standin: LangSmithStandIn, rag_project: str
) -> None:
    source = LangSmithApiSource(
        make_client(_settings(langsmith_standin)), RunSelection(projects=[rag_project]), page=200
    )
    before = _requests(langsmith_standin, V2)
    items = source.fetch(None)
    first = next(items)
    # One page of 200 roots and one query for their children before the first run is handed
    # on: nothing of the rest of the project is read yet.
    assert _requests(langsmith_standin, V2) - before == 1 + 1
    rest = list(items)
    # 6 pages of roots (5 x 200 + 50), each batch's children in one query.
    assert _requests(langsmith_standin, V2) - before == 6 + 6
    conversations = [convert_run(i.run, i.feedback, i.project) for i in [first, *rest]]
    assert len(conversations) == 1050 and not any(isinstance(c, Skip) for c in conversations)
    for conversation in conversations:
        assert not isinstance(conversation, Skip)
        n = conversation.messages[0].content.split()[-1].rstrip("?")
        assert [d.source for d in conversation.context_docs] == [f"integrations/{n}.md"]
    starts = [c.start_time for c in conversations if not isinstance(c, Skip)]
    assert starts == sorted(starts, reverse=True)  # newest first, as v2 answers


def test_limit_stops_across_pages(langsmith_standin: LangSmithStandIn, rag_project: str) -> None:
    source = LangSmithApiSource(
        make_client(_settings(langsmith_standin)),
        RunSelection(projects=[rag_project], limit=250),
        page=100,
    )
    before = _requests(langsmith_standin, V2)
    assert len(list(source.fetch(None))) == 250
    assert _requests(langsmith_standin, V2) - before == 3 + 3  # 100 + 100 + 50 roots


def test_v2_and_v1_read_the_same_runs(
    langsmith_standin: LangSmithStandIn, traced_project: dict[str, Any]
) -> None:
    """Runs read through v2 and mapped back are the runs v1 returns, field for field."""
    clients = make_client(_settings(langsmith_standin))
    project_id = str(clients.client.read_project(project_name=traced_project["project"]).id)
    query = RunQuery(project_id, error=None)
    through_v2 = list(RunReader(clients, page_size=3).runs(query, ROOT_FIELDS))
    through_v1 = list(query_v1(clients.client, query, ROOT_FIELDS, page_size=3))
    assert len(through_v2) == len(through_v1) == 8  # four traces of two runs
    for v2, v1 in zip(through_v2, through_v1, strict=True):
        assert set(v2.get("feedback_stats") or {}) == set(v1.get("feedback_stats") or {})
        for name in ROOT_FIELDS:
            if name != "feedback_stats":
                assert v2[name] == v1[name], name


# --- a LangSmith without v2, and errors on the v2 path ----------------------------------------


@pytest.fixture
def langsmith_without_v2(langsmith_standin: LangSmithStandIn) -> Any:
    """The same runs served by a LangSmith that has no v2 run query."""
    with LangSmithStandIn(
        api_key=langsmith_standin.api_key, store=langsmith_standin.store, runs_v2=False
    ) as old:
        yield old


def test_without_v2_the_sync_reads_v1_after_one_notice(
    traced_project: dict[str, Any],
    langsmith_standin: LangSmithStandIn,
    langsmith_without_v2: LangSmithStandIn,
) -> None:
    project, ids = traced_project["project"], traced_project["ids"]
    for flags in ([], ["--tag", "prod"], ["--feedback-key", "user_score", "--feedback-min", "1"]):
        assert _dry_run_lines(project, langsmith_without_v2, *flags) == _dry_run_lines(
            project, langsmith_standin, *flags
        )
    result = _tracetune(
        "sync",
        "--langsmith-project",
        project,
        "--dry-run",
        "--json",
        env=_env(langsmith_without_v2),
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and len(lines) == 3
    billing = next(line["data"] for line in lines if line["run_id"] == ids["billing"])
    assert billing["context_docs"][0] == {"source": "billing.md", "content": "Docs about billing."}
    notices = [line for line in result.stderr.splitlines() if line.strip()]
    assert notices == [
        f"notice: LangSmith at {langsmith_without_v2.url} has no v2 run query (HTTP 404 on "
        "/api/v2/runs/query); reading runs through v1's /runs/query"
    ]
    assert _requests(langsmith_without_v2, V1) > 0


def test_a_filter_langsmith_refuses_is_one_line_and_exit_6(
    traced_project: dict[str, Any], langsmith_standin: LangSmithStandIn
) -> None:
    for flags in (["--filter", 'eq(colour, "red")'], ["--run-type", "agent"]):
        result = _tracetune(
            "sync", "--langsmith-project", traced_project["project"], "--dry-run", *flags,
            env=_env(langsmith_standin),
        )  # fmt: skip
        assert result.returncode == 6, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_v2_refusing_the_key_or_unreachable_is_one_clear_error(
    langsmith_standin: LangSmithStandIn, traced_project: dict[str, Any]
) -> None:
    """The v2 client's own failures map like v1's: the key, or the server, named."""
    good = make_client(_settings(langsmith_standin))
    project_id = str(good.client.read_project(project_name=traced_project["project"]).id)
    wrong_key = langsmith.Langsmith(api_key="lsv2_wrong", base_url=langsmith_standin.url)
    closed = langsmith.Langsmith(
        api_key=langsmith_standin.api_key, base_url=f"http://127.0.0.1:{free_port()}", max_retries=0
    )
    for api, error, message in (
        (wrong_key, AuthenticationError, "refused the API key"),
        (closed, ServiceUnavailableError, "cannot reach LangSmith"),
    ):
        reader = RunReader(LangSmithClients(good.client, api, langsmith_standin.url), 100)
        with pytest.raises(error, match=message), langsmith_errors(langsmith_standin.url):
            list(reader.runs(RunQuery(project_id), ROOT_FIELDS))


def test_agent_roots_read_from_the_api_keep_their_system_prompt_and_tools(
    langsmith_standin: LangSmithStandIn, langsmith_project: Callable[[str], str]
) -> None:
    """Agents add the system prompt and tools per model call, not to their state: the API
    source fetches the model-call children of agent roots, so a run read live converts exactly
    as the same run read from an exported file."""
    fixture = Path(__file__).parent / "fixtures" / "runs" / "agents.jsonl"
    project = langsmith_project("agents")
    langsmith_standin.store.load_jsonl(fixture, project=project)
    source = LangSmithApiSource(
        make_client(_settings(langsmith_standin)), RunSelection(projects=[project])
    )
    live = {str(i.run["id"]): convert_run(i.run, i.feedback, i.project) for i in source.fetch(None)}
    from_file = {
        str(i.run["id"]): convert_run(i.run, i.feedback, i.project)
        for i in RunFileSource(fixture).fetch(None)
        if not isinstance(i, Skip)
    }
    agents = {
        run_id: c
        for run_id, c in from_file.items()
        if not isinstance(c, Skip) and c.source_shape == "agent"
    }
    assert agents, "the fixture holds agent roots"
    assert any(c.messages[0].role == "system" for c in agents.values())
    assert any(c.tools for c in agents.values())
    for run_id, conversation in agents.items():
        read = live[run_id]
        assert not isinstance(read, Skip)
        assert read.messages == conversation.messages
        assert read.tools == conversation.tools
