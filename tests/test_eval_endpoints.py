"""Evaluating a model behind an OpenAI-compatible endpoint, with an LLM judge, through the real
`openai` SDK against the chat-completions stand-in; a rerun resumes without asking again."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from finetune_exports import recorded_export
from standins.openai_chat import OpenAIChatStandIn, Reply
from worker_env import tracetune, worker_env

from tracetune.sync.evaluate.heldout import load_heldout
from tracetune.sync.evaluate.judge import SYSTEM as JUDGE_SYSTEM

pytestmark = pytest.mark.integration


def _responder(references: Mapping[str, str]) -> Any:
    """The served model answers with the approved answer; the judge picks the one matching it."""

    def respond(body: Mapping[str, Any]) -> Reply:
        messages = body["messages"]
        if messages[0]["content"] == JUDGE_SYSTEM:
            text = messages[1]["content"]
            reference = re.search(r"Reference answer:\n(.*?)\n\nAnswer A:", text, re.S)
            answer_a = re.search(r"Answer A:\n(.*?)\n\nAnswer B:", text, re.S)
            assert reference and answer_a
            return Reply(content="A" if answer_a.group(1) == reference.group(1) else "B")
        return Reply(content=references[messages[-1]["content"]])

    return respond


def test_an_endpoint_model_against_a_local_one_with_a_judge(tmp_path: Path, redis_url: str) -> None:
    export = recorded_export(tmp_path, redis_url, reviewed=30, export_id="x-endpoint")
    examples = load_heldout("x-endpoint", export).examples
    references = {e.prompt[-1]["content"]: e.reference for e in examples}
    with OpenAIChatStandIn(api_key="sk-served", responder=_responder(references)) as served:
        env = worker_env(
            tmp_path,
            redis_url,
            tracetune_registry_uri=f"sqlite:///{tmp_path / 'registry.db'}",
            served_key=served.api_key,
        )
        tiny = tmp_path / "tiny"
        tracetune("finetune", "tiny-model", str(tiny), env=env, cwd=tmp_path)
        tracetune("models", "register", "--local", str(tiny), env=env, cwd=tmp_path)
        tracetune("models", "promote", "1", "--reason", "base", env=env, cwd=tmp_path)
        registered = tracetune(
            "models", "register", "--model", "support-bot-2", "--base-url", served.base_url,
            "--api-key-env", "SERVED_KEY", env=env, cwd=tmp_path,
        )  # fmt: skip
        assert registered.stdout.startswith(f"registered v2: support-bot-2 at {served.base_url}")

        command = (
            "eval", "run", "--export", "x-endpoint", "--no-review", "--max-new-tokens", "8",
            "--judge-model", "judge-1", "--judge-url", served.base_url,
            "--judge-key-env", "SERVED_KEY", "--json",
        )  # fmt: skip
        report = json.loads(tracetune(*command, env=env, cwd=tmp_path).stdout)
        asked = len(served.requests)
        again = json.loads(tracetune(*command, env=env, cwd=tmp_path).stdout)

    n = len(examples)
    assert report["models"]["candidate"]["similarity"] == 1.0
    assert report["models"]["baseline"]["similarity"] < 0.5
    assert report["win_rates"]["judge"]["wins"] == n
    assert report["win_rates"]["automatic"]["wins"] == n
    assert report["preference_source"] == "judge"
    assert not report["worse"]
    answers = [r for r in served.requests if r["model"] == "support-bot-2"]
    assert len(answers) == n
    assert {r["temperature"] for r in answers} == {0}
    assert {r["max_tokens"] for r in answers} == {8}
    assert asked == 2 * n  # n answers, n judgements
    assert len(served.requests) == asked  # the rerun resumed: nothing asked twice
    assert again["eval_id"] == report["eval_id"]
    show = json.loads(tracetune("models", "show", "2", "--json", env=env, cwd=tmp_path).stdout)
    assert show["evaluations"][report["eval_id"]]["win_rates"]["judge"]["wins"] == n
    assert "sk-served" not in json.dumps(show)
    assert (
        "sk-served"
        not in (tmp_path / "state" / "evals").joinpath(report["eval_id"], "plan.json").read_text()
    )
