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
from tracetune.sync.review_kinds import PREDICTION_DETAILS_KEY, ReviewKind
from tracetune.sync.stack.servers import LabelStudioServer

pytestmark = pytest.mark.integration

PII_PROMPT = "I'm Sarah Connor, reach me at sarah.connor@example.com. Why was I charged twice?"
PII_ANSWER = "As an AI language model I can't see payments; call billing at +1 (415) 555-2671."
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
    assert {"pii", "self_reference", "question"} <= set(flags["value"]["choices"])
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
    huge = {"tasks": [{"id": 1, "data": {"prompt": "hi", "answer": "x " * 600_000}}],
            "project": "1.0", "label_config": config}  # fmt: skip
    too_long = httpx.post(f"{url}/predict", auth=auth, json=huge, timeout=60)
    assert too_long.status_code == 413 and "characters" in too_long.json()["error"]
    good = {"tasks": [{"id": 1, "data": chat_data("ok", "Still up?", "Yes.")}],
            "project": "1.0", "label_config": config}  # fmt: skip
    response = httpx.post(f"{url}/predict", auth=auth, json=good, timeout=120)
    assert response.status_code == 200 and len(response.json()["results"]) == 1
    assert httpx.get(f"{url}/health", auth=auth, timeout=10).json()["status"] == "UP"
