"""The real Label Studio using the running backend: predictions retrieved, stored and learned from.

Label Studio connects to `tracetune backend` (gunicorn, basic auth) through the SDK, asks it for
predictions from the Data Manager action and when a task is opened, and stores them. A real
annotation fires the project webhook, the concept retrains in the background and the model
version moves, so Label Studio asks again and gets predictions from the new model.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from label_studio_sdk import LabelStudio
from plugins.backend_server import BackendServer, chat_data

from tracetune.sync.label_config import flag_choices, render_label_config
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.label_studio.views import ensure_review_tabs
from tracetune.sync.review_kinds import DEFAULT_FLAGS, PREDICTION_DETAILS_KEY, ReviewKind
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import LabelStudioServer

pytestmark = pytest.mark.integration

PII_PROMPT = "I'm Sarah Connor, reach me at sarah.connor@example.com. Why was I charged twice?"
# A private person's number in the answer: the flag is about the answer, whatever the prompt holds.
PII_ANSWER = "As an AI language model I can't see payments; I noted your mobile +1 (415) 555-2671."
TASKS = [
    chat_data("ls-1", PII_PROMPT, PII_ANSWER),
    chat_data("ls-2", "Wie exportiere ich alle Aufgaben als JSON?", "Klicken Sie auf Exportieren."),
    chat_data("ls-3", "How do I add a teammate to my project?", "Open Members and click Invite."),
    chat_data("ls-4", "How are seats counted?", "Seats are counted per active reviewer."),
]


def connect(client: LabelStudio, server: BackendServer, project_id: int) -> None:
    """The webhook first (with the auth header), so Label Studio does not add its own."""
    token = base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
    client.webhooks.create(
        url=f"{server.url}/webhook",
        project=project_id,
        send_payload=True,
        send_for_all_actions=True,
        headers={"Authorization": f"Basic {token}"},
    )
    client.ml.create(url=server.url, project=project_id, title="tracetune",
                     auth_method="BASIC_AUTH", basic_auth_user=server.user,
                     basic_auth_pass=server.password)  # fmt: skip


def retrieve(client: LabelStudio, project_id: int, task_ids: list[int]) -> None:
    """The Data Manager's "Retrieve predictions" action on the selected tasks."""
    client.actions.create(
        id="retrieve_tasks_predictions",
        project=project_id,
        selected_items={"all": False, "included": task_ids},
    )


def predictions_by_task(client: LabelStudio, project_id: int) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = {}
    for prediction in client.predictions.list(project=project_id):
        found.setdefault(int(prediction.task), []).append(prediction)
    return found


def flags_result(prediction: Any) -> dict[str, Any]:
    return next(r for r in prediction.result if r["from_name"] == "flags")


def setup_version(server: BackendServer, project_id: int, config: str) -> str:
    response = httpx.post(f"{server.url}/setup", auth=server.auth, timeout=10,
                          json={"project": f"{project_id}.0", "schema": config})  # fmt: skip
    response.raise_for_status()
    return str(response.json()["model_version"])


def test_label_studio_retrieves_stores_and_learns_from_predictions(
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    backend_server: BackendServer,
    project_title: str,
) -> None:
    config = render_label_config(ReviewKind.CHAT)
    project = label_studio.projects.create(title=project_title, label_config=config)
    label_studio.projects.import_tasks(id=project.id, request=[{"data": d} for d in TASKS])
    ids = {t.data["run_id"]: t.id for t in label_studio.tasks.list(project=project.id)}
    connect(label_studio, backend_server, project.id)
    (model,) = label_studio.ml.list(project=project.id)
    assert model.state == "CO"  # connected: /health and /setup answered through basic auth

    # "Retrieve predictions" on two selected tasks.
    retrieve(label_studio, project.id, [ids["ls-1"], ids["ls-2"]])
    stored = predictions_by_task(label_studio, project.id)
    assert set(stored) == {ids["ls-1"], ids["ls-2"]}
    (first,) = stored[ids["ls-1"]]
    flags = flags_result(first)
    assert {"pii", "self_reference"} <= set(flags["value"]["choices"])
    assert flags[PREDICTION_DETAILS_KEY]["pii_types"] == ["EMAIL", "PERSON", "PHONE"]
    assert first.model_version == label_studio.ml.get(id=model.id).model_version
    assert first.score == pytest.approx(flags["score"])
    phone = next(r for r in first.result if r["from_name"] == "pii_answer")["value"]
    assert PII_ANSWER[phone["start"] : phone["end"]] == "+1 (415) 555-2671"
    corrected = next(r for r in first.result if r["from_name"] == "corrected_answer")
    assert corrected["value"]["text"] == [PII_ANSWER]
    assert "non_english" in flags_result(stored[ids["ls-2"]][0])["value"]["choices"]

    # Opening a task that has no prediction yet makes Label Studio ask the backend.
    label_studio.tasks.get(id=ids["ls-3"])
    assert ids["ls-3"] in predictions_by_task(label_studio, project.id)

    # A custom concept from the CLI, added to the project's flags.
    cli = subprocess.run(
        [sys.executable, "-m", "tracetune.sync.cli", "concepts", "add", "billing",
         "-p", "I was charged twice this month", "-p", "Where can I download my invoice?",
         "-p", "Please refund the duplicate payment", "-n", "The export crashes on big projects",
         "-n", "How do I add a teammate?", "-n", "Dark mode would be nice",
         "--project", project_title],
        env=cli_env(label_studio_server, backend_server), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert f"project {project_title!r} now offers the flag 'billing'" in cli.stdout
    config = label_studio.projects.get(id=project.id).label_config
    assert "billing" in flag_choices(config)
    before = setup_version(backend_server, project.id, config)

    # A reviewer flags "billing" where the model did not: a real annotation fires the webhook.
    label_studio.annotations.create(id=ids["ls-4"], result=[
        {"from_name": "flags", "to_name": "answer", "type": "choices",
         "value": {"choices": ["billing"]}},
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["accept"]}},
    ])  # fmt: skip
    after = before
    deadline = time.monotonic() + 120
    while after == before and time.monotonic() < deadline:
        time.sleep(1)
        after = setup_version(backend_server, project.id, config)
    assert after != before, "the concept did not retrain after the annotation"

    # Label Studio sees a new version and predicts again; the new model knows the example.
    # (Compared with `before`, not `after`: another concept may retrain meanwhile.)
    retrieve(label_studio, project.id, [ids["ls-4"]])
    (latest,) = predictions_by_task(label_studio, project.id)[ids["ls-4"]]
    assert latest.model_version not in (before, first.model_version)
    assert label_studio.ml.get(id=model.id).model_version != before
    assert flags_result(latest)[PREDICTION_DETAILS_KEY]["scores"]["billing"] >= 0.5


def cli_env(server: LabelStudioServer, backend: BackendServer) -> dict[str, str]:
    import os

    return {**os.environ, "LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": server.token,
            "REDIS_URL": backend.redis_url, "HF_HUB_OFFLINE": "1"}  # fmt: skip


def test_the_server_answers_bad_requests_with_json_and_keeps_serving(
    backend_server: BackendServer,
) -> None:
    url, auth = backend_server.url, backend_server.auth
    config = render_label_config(ReviewKind.CHAT)
    wrong = httpx.get(f"{url}/health", auth=(backend_server.user, "wrong"), timeout=10)
    assert wrong.status_code == 401 and "authentication required" in wrong.json()["error"]
    broken = httpx.post(f"{url}/predict", auth=auth, content=b"{oops", timeout=10,
                        headers={"Content-Type": "application/json"})  # fmt: skip
    assert broken.status_code == 400 and broken.json()["status"] == 400
    # One oversized task costs its own pre-labels only, with the reason, not the batch's.
    huge = {"tasks": [{"id": 1, "data": {"prompt": "hi", "answer": "x " * 600_000}},
                      {"id": 2, "data": chat_data("ok", "Still up?", "Yes.")}],
            "project": "1.0", "label_config": config}  # fmt: skip
    response = httpx.post(f"{url}/predict", auth=auth, json=huge, timeout=120)
    assert response.status_code == 200
    first, second = response.json()["results"]
    (reasons,) = [r for r in first["result"] if r["from_name"] == "flag_reasons"]
    assert any("1,200,000 characters" in line for line in reasons["value"]["text"])
    (flags,) = [r for r in second["result"] if r["from_name"] == "flags"]
    assert flags[PREDICTION_DETAILS_KEY]["scores"]
    assert httpx.get(f"{url}/health", auth=auth, timeout=10).json()["status"] == "UP"


def test_prelabelling_twice_leaves_one_current_prediction_per_task(
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    backend_server: BackendServer,
    project_title: str,
) -> None:
    """The demo's "retrieve predictions" for every task, twice, and again after the model
    version moved: one prediction per task from the current version; another model's stays."""
    config = render_label_config(ReviewKind.CHAT)
    project = label_studio.projects.create(title=project_title, label_config=config)
    label_studio.projects.import_tasks(id=project.id, request=[{"data": d} for d in TASKS])
    task_ids = [t.id for t in label_studio.tasks.list(project=project.id)]
    connected = subprocess.run(
        [sys.executable, "-m", "tracetune.sync.cli", "backend", "connect", "--project",
         project_title, "--url", backend_server.url],
        env={**cli_env(label_studio_server, backend_server), "BASIC_AUTH_USER": backend_server.user,
             "BASIC_AUTH_PASS": backend_server.password},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    assert "pre-labels from the live model 'tracetune'" in connected.stdout
    settings = label_studio.projects.get(id=project.id)
    assert settings.show_collab_predictions is True and settings.model_version == "tracetune"

    for _ in range(2):
        retrieve(label_studio, project.id, task_ids)
        stored = predictions_by_task(label_studio, project.id)
        assert sorted(stored) == sorted(task_ids)
        assert all(len(found) == 1 for found in stored.values())
    (first_version,) = {p.model_version for found in stored.values() for p in found}
    first_ids = {p.id for found in stored.values() for p in found}
    foreign = label_studio.predictions.create(task=task_ids[0], result=[], score=0.5,
                                              model_version="gpt-judge-v2")  # fmt: skip

    # A new flag in the config is a new model version: every task is asked again, and the
    # backend removes its older predictions before Label Studio stores the new ones.
    label_studio.projects.update(
        id=project.id, label_config=render_label_config(ReviewKind.CHAT, [*DEFAULT_FLAGS, "tone"])
    )
    retrieve(label_studio, project.id, task_ids)
    stored = predictions_by_task(label_studio, project.id)
    ours = {t: [p for p in found if p.model_version != foreign.model_version]
            for t, found in stored.items()}  # fmt: skip
    assert sorted(ours) == sorted(task_ids) and all(len(found) == 1 for found in ours.values())
    (second_version,) = {p.model_version for found in ours.values() for p in found}
    assert second_version != first_version
    assert not first_ids & {p.id for found in ours.values() for p in found}
    assert foreign.id in {p.id for p in stored[task_ids[0]]}  # another model's is kept
    assert label_studio.ml.list(project=project.id)[0].model_version == second_version


def test_the_sync_and_connect_give_a_data_manager_tab_per_flag(
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    backend_server: BackendServer,
    project_title: str,
) -> None:
    config = render_label_config(ReviewKind.CHAT)
    project = label_studio.projects.create(title=project_title, label_config=config)
    label_studio.projects.import_tasks(id=project.id, request=[{"data": d} for d in TASKS])
    ids = {t.data["run_id"]: t.id for t in label_studio.tasks.list(project=project.id)}
    connect(label_studio, backend_server, project.id)
    retrieve(label_studio, project.id, list(ids.values()))
    flagged = {
        task_id: set(flags_result(found[0])["value"]["choices"])
        for task_id, found in predictions_by_task(label_studio, project.id).items()
    }
    settings = Settings(label_studio_url=label_studio_server.url,
                        label_studio_api_key=label_studio_server.token)  # fmt: skip
    gateway = LabelStudioGateway(settings)
    report = ensure_review_tabs(gateway, project.id)
    assert report.created == ["All tasks", *DEFAULT_FLAGS]
    again = ensure_review_tabs(gateway, project.id)
    assert again.created == [] and again.unchanged == report.created  # no duplicates

    views = gateway.api_json("GET", "/api/dm/views/", params={"project": project.id})
    by_title = {v["data"]["title"]: v for v in views}
    hidden = by_title["pii"]["data"]["hiddenColumns"]["explore"]
    assert "tasks:data.dialogue" in hidden and "tasks:data.messages" in hidden
    assert "tasks:data.prompt" not in hidden and "tasks:data.answer" not in hidden
    for flag in ("pii", "non_english", "self_reference", "refusal"):
        listed = gateway.api_json("GET", "/api/tasks/", params={"view": by_title[flag]["id"],
                                                                "project": project.id})  # fmt: skip
        expected = {t for t, flags in flagged.items() if flag in flags}
        assert {t["id"] for t in listed["tasks"]} == expected, flag
    assert ids["ls-1"] in {t for t, flags in flagged.items() if "pii" in flags}
