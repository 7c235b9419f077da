"""The sync reading the LangSmith API through the real SDK, pointed at the stand-in.

Traces are written by real code through the real SDK (`@traceable`, `Client.create_run`,
`create_feedback`), then `tracetune sync` reads them back like it would from LangSmith.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import langsmith
import pytest
from label_studio_sdk import LabelStudio
from langsmith import traceable
from standins.langsmith import LangSmithStandIn

from tracetune.sync.stack.servers import LabelStudioServer, free_port

TRACETUNE = str(Path(".venv/bin/tracetune").resolve())


def _env(standin: LangSmithStandIn, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_"))}
    env.update(LANGSMITH_ENDPOINT=standin.url, LANGSMITH_API_KEY=standin.api_key, **extra)
    return env


def _tracetune(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACETUNE, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _client(standin: LangSmithStandIn) -> langsmith.Client:
    return langsmith.Client(api_url=standin.url, api_key=standin.api_key)


def _dry_run_ids(project: str, standin: LangSmithStandIn, *args: str) -> set[str]:
    result = _tracetune(
        "sync", "--langsmith-project", project, "--dry-run", "--json", *args, env=_env(standin)
    )
    assert result.returncode == 0, result.stderr
    return {json.loads(line)["run_id"] for line in result.stdout.splitlines() if '"data"' in line}


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


def test_selection_flags_pick_the_right_runs(
    traced_project: dict[str, Any], langsmith_standin: LangSmithStandIn
) -> None:
    project, ids = traced_project["project"], traced_project["ids"]
    ok = {ids["billing"], ids["webhooks"], ids["exports"]}
    assert _dry_run_ids(project, langsmith_standin) == ok
    assert _dry_run_ids(project, langsmith_standin, "--tag", "staging") == {ids["exports"]}
    assert _dry_run_ids(project, langsmith_standin, "--metadata", "tier=free") == {ids["webhooks"]}
    thumbs_up = ("--feedback-key", "user_score", "--feedback-min", "1")
    assert _dry_run_ids(project, langsmith_standin, *thumbs_up) == {ids["billing"]}
    assert _dry_run_ids(project, langsmith_standin, "--filter", 'eq(name, "nothing")') == set()
    assert _dry_run_ids(project, langsmith_standin, "--limit", "1") <= ok
    assert len(_dry_run_ids(project, langsmith_standin, "--limit", "1")) == 1
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert _dry_run_ids(project, langsmith_standin, "--since", future) == set()


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
            {"inputs": {"question": "What is SSO?"}, "outputs": {"answer": "Single sign-on."}},
            {"inputs": {"question": "Where are exports?"}, "outputs": {"answer": "Data > Export."}},
        ],
    )
    result = _tracetune(
        "sync", "--dataset", name, "--dry-run", "--json", env=_env(langsmith_standin)
    )
    assert result.returncode == 0, result.stderr
    answers = sorted(json.loads(line)["data"]["answer"] for line in result.stdout.splitlines())
    assert answers == ["Data > Export.", "Single sign-on."]
