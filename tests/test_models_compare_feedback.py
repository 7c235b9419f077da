"""`tracetune models compare-feedback`: production traces of the current and the previous model,
written by a real app (`@traceable` + `wrap_openai` against the chat stand-in) into the
LangSmith stand-in, with feedback through the SDK; the command says when to roll back."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import langsmith
import pytest
from langsmith import traceable
from langsmith.wrappers import wrap_openai
from openai import OpenAI
from standins.langsmith import LangSmithStandIn
from standins.openai_chat import OpenAIChatStandIn, Reply
from worker_env import tracetune, worker_env

pytestmark = pytest.mark.integration


def _trace_traffic(
    client: langsmith.Client,
    project: str,
    served: OpenAIChatStandIn,
    model: str,
    scores: list[int],
    failures: int,
) -> None:
    """One trace per score; the first `failures` traces fail after the model answered."""
    llm = wrap_openai(OpenAI(api_key=served.api_key, base_url=served.base_url))

    @traceable(run_type="chain", name="support_bot", client=client, project_name=project)
    def answer(question: str, fail: bool) -> dict[str, str]:
        reply = llm.chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}]
        )
        if fail:
            raise RuntimeError("the answer could not be rendered")
        return {"answer": reply.choices[0].message.content or ""}

    for index, score in enumerate(scores):
        run_ids: list[str] = []

        def keep(run: Any, ids: list[str] = run_ids) -> None:
            ids.append(str(run.id))

        with contextlib.suppress(RuntimeError):  # a failed trace is traffic too
            answer(
                f"How do I export report {index}?",
                index < failures,
                langsmith_extra={"on_end": keep},
            )
        client.flush()  # the run exists before its feedback names its project
        session = client.read_project(project_name=project).id
        client.create_feedback(run_ids[0], key="user_score", score=score, session_id=session)
    client.flush()


@pytest.fixture
def registry_env(
    tmp_path: Path, redis_url: str, langsmith_standin: LangSmithStandIn
) -> dict[str, str]:
    return worker_env(
        tmp_path,
        redis_url,
        tracetune_registry_uri=f"sqlite:///{tmp_path / 'registry.db'}",
        langsmith_endpoint=langsmith_standin.url,
        langsmith_api_key=langsmith_standin.api_key,
    )


def test_a_worse_new_model_is_called_out_with_what_rollback_restores(
    tmp_path: Path,
    langsmith_standin: LangSmithStandIn,
    langsmith_project: Callable[[str], str],
    langsmith_env: dict[str, str],
    registry_env: dict[str, str],
) -> None:
    client = langsmith.Client(api_url=langsmith_standin.url, api_key=langsmith_standin.api_key)
    project, calm = langsmith_project("prod"), langsmith_project("calm")
    answer = Reply(content="Open Reports, pick the report and press Export.")
    with OpenAIChatStandIn(responder=lambda body: answer) as served:
        _trace_traffic(client, project, served, "support-bot-2", [1, 1, 1, 0, 1, 1, 1, 1], 0)
        _trace_traffic(client, project, served, "support-bot-3", [0, 0, 1, 0, 0, 0, 0, 0], 3)
        _trace_traffic(client, calm, served, "support-bot-2", [1, 0, 1, 1, 0, 1], 0)
        _trace_traffic(client, calm, served, "support-bot-3", [1, 1, 0, 1, 0, 1], 0)
        _trace_traffic(client, project, served, "someone-else", [0, 0], 2)

    env, cwd = registry_env, tmp_path
    for name in ("support-bot-2", "support-bot-3"):
        tracetune(
            "models", "register", "--model", name, "--base-url", served.base_url, env=env, cwd=cwd
        )
    tracetune("models", "promote", "1", "--reason", "release 2", env=env, cwd=cwd)
    tracetune("models", "promote", "2", "--reason", "release 3", "--force", env=env, cwd=cwd)

    result = tracetune("models", "compare-feedback", "--langsmith-project", project,
                       "--since", "1h", env=env, cwd=cwd)  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[1].startswith("current   v2   support-bot-3")
    assert "traces 8" in lines[1] and "errors 38%" in lines[1]
    assert "user_score 0.12 (n=8)" in lines[1]
    assert lines[2].startswith("previous  v1   support-bot-2")
    assert "errors 0%" in lines[2] and "user_score 0.88 (n=8)" in lines[2]
    assert lines[3] == (
        "v2 looks worse than v1: feedback user_score averages 0.12 against 0.88; 38% of its "
        "traces failed against 0%."
    )
    assert lines[4] == (
        f"`tracetune models rollback --reason ...` would restore v1 (support-bot-2 at "
        f"{served.base_url})."
    )

    calm_result = tracetune("models", "compare-feedback", "--langsmith-project", calm,
                            "--since", "1h", "--json", env=env, cwd=cwd)  # fmt: skip
    report = json.loads(calm_result.stdout)
    assert not report["looks_worse"]
    assert report["current"]["traces"] == report["previous"]["traces"] == 6
    assert report["current"]["signals"] == {
        "pii_leak": 0, "secret_leak": 0, "toxicity": 0, "profanity": 0, "refusal": 0
    }  # fmt: skip
    assert report["rollback_restores"] == {"version": 1, "model": "support-bot-2"}
