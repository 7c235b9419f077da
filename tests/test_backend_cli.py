"""The backend's commands as a user runs them: `concepts`, `signals`, `search`, `similar`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from label_studio_sdk import LabelStudio
from plugins.backend_server import chat_data

from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.stack.servers import LabelStudioServer, RedisServer


@pytest.fixture(scope="module")
def env(redis_server: RedisServer, backend_redis_url: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": backend_redis_url, "HF_HUB_OFFLINE": "1"}


def tracetune(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracetune.sync.cli", *args],
        input=stdin, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_concepts_list_and_score(env: dict[str, str]) -> None:
    listed = tracetune(env, "concepts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    concepts = {row["name"]: row for row in lines(listed.stdout)}
    assert concepts["toxicity"]["builtin"] is True and concepts["toxicity"]["flag"] == "toxicity"
    assert all(row["cv_auc"] >= 0.85 for row in concepts.values() if row["builtin"])

    stdin = (
        '{"text": "You are a worthless idiot.", "id": 1}\n{"text": "Thanks, it works!", "id": 2}\n'
    )
    scored = tracetune(env, "concepts", "score", "toxicity", stdin=stdin)
    assert scored.returncode == 0, scored.stderr
    toxic, kind = lines(scored.stdout)
    assert toxic["id"] == 1 and toxic["score"] > 0.5
    assert kind["text"] == "Thanks, it works!" and kind["score"] < 0.5


def test_signals_run_adds_results_and_bad_input_is_one_line(env: dict[str, str]) -> None:
    pii = tracetune(env, "signals", "run", "pii", stdin='{"text": "mail jane@example.com"}\n')
    assert pii.returncode == 0, pii.stderr
    (line,) = lines(pii.stdout)
    assert line["pii"]["spans"][0]["text"] == "jane@example.com"

    texts = [
        "How do I rotate my API key in the settings page?",
        "How do I rotate my API key in the settings page ?",
        "What is the capital of Portugal?",
    ]
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    dupes = tracetune(env, "signals", "run", "near_duplicate", stdin=stdin)
    assert dupes.returncode == 0, dupes.stderr
    first, second, third = (line["near_duplicate"] for line in lines(dupes.stdout))
    assert second["duplicate_of"] == [1] and second["cluster_id"] == first["cluster_id"]
    assert third["is_duplicate"] is False

    unknown = tracetune(env, "signals", "run", "nope", stdin='{"text": "x"}\n')
    assert unknown.returncode == 5 and unknown.stderr.count("\n") == 1
    assert "no signal named 'nope'" in unknown.stderr
    broken = tracetune(env, "concepts", "score", "toxicity", stdin='{"text": 3}\n')
    assert broken.returncode == 6 and "stdin line 1" in broken.stderr


@pytest.mark.integration
def test_search_and_similar_print_nearest_tasks_with_links(
    env: dict[str, str],
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    project_title: str,
) -> None:
    project = label_studio.projects.create(
        title=project_title, label_config=render_label_config(ReviewKind.CHAT)
    )
    data = [
        chat_data("s1", "I was charged twice for my subscription", "We refunded the duplicate."),
        chat_data("s2", "My card was billed two times this month", "The extra charge is reversed."),
        chat_data("s3", "How do I invite a teammate?", "Open Members and click Invite."),
    ]
    label_studio.projects.import_tasks(id=project.id, request=[{"data": d} for d in data])
    ids = {t.data["run_id"]: t.id for t in label_studio.tasks.list(project=project.id)}
    ls_env = {**env, "LABEL_STUDIO_URL": label_studio_server.url,
              "LABEL_STUDIO_API_KEY": label_studio_server.token}  # fmt: skip

    found = tracetune(ls_env, "search", project_title, "double payment on my bill", "--limit", "2")
    assert found.returncode == 0, found.stderr
    rows = found.stdout.splitlines()
    assert len(rows) == 2
    assert {row.split()[2] for row in rows} == {str(ids["s1"]), str(ids["s2"])}
    assert f"{label_studio_server.url}/projects/{project.id}/data?task=" in rows[0]

    similar = tracetune(ls_env, "similar", project_title, str(ids["s1"]), "--json")
    assert similar.returncode == 0, similar.stderr
    nearest = lines(similar.stdout)
    assert nearest[0]["task_id"] == ids["s2"]
    assert ids["s1"] not in [row["task_id"] for row in nearest]
    assert nearest[0]["score"] > nearest[-1]["score"]
