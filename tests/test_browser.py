"""A reviewer's session in the real Label Studio UI, in headless Chromium.

Runs are synced with `tracetune sync` (which creates the review tabs), the project is connected
to the running backend with `tracetune backend connect` (which sets it to pre-label from the
backend's live model: no settings page to visit), and Label Studio asks the backend for
predictions. The browser then signs in, sees a Data Manager tab per flag and opens one, opens a
task, sees the dialogue, the flags the backend pre-selected and each flag's reason beside them,
edits the answer and submits; "Label All Tasks" hands out the next task pre-labelled; the SDK
and the next export see the edit. Screenshots of every step land in `test-artifacts/browser/`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import (
    ARTIFACTS,
    Screenshots,
    choice_input,
    chromium_page,
    corrected_answer,
    data_manager_tab,
    flag_reasons,
    login,
    open_labeling,
    submit_button,
)
from label_studio_sdk import LabelStudio
from playwright.sync_api import Page, expect
from plugins.backend_server import BackendServer
from sync_helpers import qa_run, write_jsonl

from tracetune.backend.prediction.predictions import NO_FLAG
from tracetune.sync.label_config import flag_choices
from tracetune.sync.review_kinds import PREDICTION_DETAILS_KEY
from tracetune.sync.stack.servers import LabelStudioServer

pytestmark = pytest.mark.e2e

EMAIL = "dana.whitfield@example.com"
PII_QUESTION = f"Hi, this is {EMAIL}: why was my invoice sent twice this month?"
# The answer repeats the user's address: the pii flag is about the answer under review.
PII_ANSWER = f"Billing retried the charge for {EMAIL}; open Billing and void the duplicate invoice."
CORRECTED = (
    "Sorry about that! Billing retried the charge by mistake: open Billing > Invoices, void "
    "the duplicate, and the refund reaches your card within 5 business days."
)
RUNS = [
    qa_run(0, PII_QUESTION, PII_ANSWER),
    qa_run(1, "How do I invite a teammate to my workspace?", "Open Members and click Invite."),
    qa_run(2, "Can you cancel my subscription for me?", "I'm sorry, but I can't help with that."),
]


def tracetune(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tracetune.sync.cli", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def choices(result: list[dict[str, Any]], name: str) -> list[str]:
    (item,) = [r for r in result if r["from_name"] == name]
    return list(item["value"]["choices"])


def reason_lines(result: list[dict[str, Any]]) -> list[str]:
    """What the backend wrote under the flags: one line per pre-selected flag."""
    (item,) = [r for r in result if r["from_name"] == "flag_reasons"]
    return list(item["value"]["text"])


def expect_reasons(page: Page, lines: list[str]) -> None:
    """Every reason line is on screen, in the read-only list under the flags."""
    shown = flag_reasons(page)
    for line in lines:
        expect(shown.get_by_text(line, exact=True)).to_be_visible()


def expect_flags(page: Page, offered: list[str], predicted: list[str]) -> None:
    """Exactly the predicted flags are checked in the editor."""
    for flag in offered:
        box = choice_input(page, flag)
        if flag in predicted:
            expect(box).to_be_checked()
        else:
            expect(box).not_to_be_checked()


def jsonl_line(path: Path, line: int) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8").splitlines()[line - 1])


def test_a_reviewer_edits_a_prelabelled_task_in_the_browser_and_the_export_has_the_edit(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    backend_server: BackendServer,
    redis_url: str,
) -> None:
    project_title = f"Support chat review {secrets.token_hex(3)}"  # shown in the screenshots
    env = {
        **os.environ,
        "LABEL_STUDIO_URL": label_studio_server.url,
        "LABEL_STUDIO_API_KEY": label_studio_server.token,
        "REDIS_URL": redis_url,
        "BASIC_AUTH_USER": backend_server.user,
        "BASIC_AUTH_PASS": backend_server.password,
        "TRACETUNE_STATE_DIR": str(tmp_path / "state"),
        "TRACETUNE_EXPORT_DIR": str(tmp_path / "exports"),
    }

    # 1. Sync the runs with the real CLI.
    runs_file = write_jsonl(tmp_path / "runs.jsonl", RUNS)
    synced = tracetune(env, tmp_path, "sync", "-p", project_title, "--file", str(runs_file),
                       "--json")  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    report = json.loads(synced.stdout.splitlines()[-1])
    assert report["imported"] == len(RUNS)
    project_id = int(report["project_id"])
    tasks = {t.data["prompt"]: t for t in label_studio.tasks.list(project=project_id)}
    assert set(tasks) == {run["inputs"]["question"] for run in RUNS}
    pii_task = tasks[PII_QUESTION]
    offered = flag_choices(label_studio.projects.get(id=project_id).label_config)

    # The sync made the review tabs: all tasks, then one per flag the project offers.
    views = label_studio.views.list(project=project_id)
    titles = [str((v.data or {}).get("title")) for v in views]
    assert titles == ["All tasks", *offered]

    # 2. Connect the backend: the project now pre-labels from its live model.
    connected = tracetune(env, tmp_path, "backend", "connect", "--project", project_title,
                          "--url", backend_server.url)  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    (model,) = label_studio.ml.list(project=project_id)
    assert model.state == "CO"  # connected: /health and /setup answered through basic auth
    hooks = [h.url for h in label_studio.webhooks.list(project=project_id)]
    assert hooks == [f"{backend_server.url}/webhook"]
    project = label_studio.projects.get(id=project_id)
    assert project.show_collab_predictions is True and project.model_version == model.title

    # 3. Label Studio asks the backend for predictions and stores them: one per task.
    label_studio.actions.create(
        id="retrieve_tasks_predictions",
        project=project_id,
        selected_items={"all": False, "included": [t.id for t in tasks.values()]},
    )
    stored = list(label_studio.predictions.list(project=project_id))
    predictions = {int(p.task): p for p in stored}
    assert len(stored) == len(predictions) == len(tasks)
    assert set(predictions) == {t.id for t in tasks.values()}
    predicted = {task_id: choices(p.result, "flags") for task_id, p in predictions.items()}
    reasons = {task_id: reason_lines(p.result) for task_id, p in predictions.items()}
    assert "pii" in predicted[pii_task.id]
    refusal_task = tasks[RUNS[2]["inputs"]["question"]]
    assert "refusal" in predicted[refusal_task.id]
    for task_id, flags in predicted.items():
        (flags_result,) = [r for r in predictions[task_id].result if r["from_name"] == "flags"]
        explained = flags_result[PREDICTION_DETAILS_KEY]["reasons"]
        assert reasons[task_id] == ([explained[f] for f in flags] or [NO_FLAG])

    base = label_studio_server.url
    with chromium_page(ARTIFACTS) as page:
        shots = Screenshots(page, ARTIFACTS)

        # 4. Sign in; the Data Manager shows a tab per flag; the refusal tab lists exactly the
        # tasks pre-labelled with it, with the prompt and the answer as readable columns.
        page.goto(f"{base}/user/login/")
        shots.take("login")
        login(page, base, label_studio_server.username, label_studio_server.password)
        page.goto(f"{base}/projects/{project_id}/data")
        for title in ["All tasks", *offered]:
            expect(data_manager_tab(page, title)).to_be_visible()
        data_manager_tab(page, "refusal").click()
        for task in tasks.values():
            answer = page.get_by_text(task.data["answer"], exact=True)
            if "refusal" in predicted[task.id]:
                expect(answer).to_be_visible()
            else:
                expect(answer).to_have_count(0)
        expect(page.get_by_text("dialogue", exact=True)).to_have_count(0)  # raw JSON hidden
        shots.take("data-manager-tabs")

        # 5. Open the task: the dialogue, the answer, the pre-selected flags and their reasons.
        first_turn = open_labeling(page, f"{base}/projects/{project_id}/data?task={pii_task.id}")
        expect(first_turn).to_contain_text("user")
        expect(first_turn).to_contain_text(PII_QUESTION)
        expect(page.locator(".lsf-richtext").filter(has_text=PII_ANSWER)).to_be_visible()
        area = corrected_answer(page)
        expect(area.get_by_test_id("htx-textbox-content")).to_have_text(PII_ANSWER)
        expect_flags(page, offered, predicted[pii_task.id])
        expect_reasons(page, reasons[pii_task.id])
        for verdict in ("accept", "edit", "reject"):
            expect(choice_input(page, verdict, "radio")).not_to_be_checked()
        shots.take("task-prelabelled")

        # 6. Verdict "edit", rewrite the pre-filled corrected answer, submit.
        choice_input(page, "edit", "radio").check()
        area.get_by_role("button", name="Edit Region").click()
        area.get_by_test_id("htx-textbox-input").fill(CORRECTED)
        area.get_by_role("button", name="Save").click()
        expect(area.get_by_test_id("htx-textbox-content")).to_have_text(CORRECTED)
        expect(choice_input(page, "edit", "radio")).to_be_checked()
        expect(submit_button(page)).to_have_text("Submit")
        shots.take("answer-edited")
        with page.expect_response(
            lambda r: (
                r.request.method == "POST" and f"/api/tasks/{pii_task.id}/annotations" in r.url
            )
        ) as posted:
            submit_button(page).click()
        assert posted.value.status == 201
        expect(page.get_by_role("status")).to_contain_text("Annotation saved successfully")
        expect(submit_button(page)).to_have_text("Update")
        shots.take("submitted")

        # The label stream ("Label All Tasks") hands out the next task, pre-labelled too.
        first_turn = open_labeling(page, f"{base}/projects/{project_id}/data?labeling=1")
        shown = first_turn.inner_text()
        (next_task,) = [t for q, t in tasks.items() if q in shown]
        assert next_task.id != pii_task.id
        expect_flags(page, offered, predicted[next_task.id])
        expect_reasons(page, reasons[next_task.id])
        shots.take("label-stream-next-task")

    # The annotation, as the SDK sees it.
    (annotation,) = label_studio.annotations.list(id=pii_task.id)
    assert not annotation.was_cancelled
    assert choices(annotation.result, "verdict") == ["edit"]
    assert sorted(choices(annotation.result, "flags")) == sorted(predicted[pii_task.id])
    (text,) = [r for r in annotation.result if r["from_name"] == "corrected_answer"]
    assert text["value"]["text"] == [CORRECTED]

    # 7. The next export trains on the correction (the e-mail address redacted).
    exported = tracetune(env, tmp_path, "export", project_title, "--now", "--json")
    assert exported.returncode == 0, exported.stderr
    folder = Path(json.loads(exported.stdout.splitlines()[-1])["path"])
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    rows = {row["set"].split(".")[0]: row for row in manifest["lineage"]
            if row["task_id"] == pii_task.id}  # fmt: skip
    assert rows["sft"]["decision"] == "edited"
    assert rows["sft"]["annotation_id"] == annotation.id
    sft = jsonl_line(folder / f"openai_{rows['sft']['set']}.jsonl", rows["sft"]["line"])
    assert sft["messages"][-1] == {"role": "assistant", "content": CORRECTED}
    (user,) = [m for m in sft["messages"] if m["role"] == "user"]
    assert user["content"] == PII_QUESTION.replace(EMAIL, "[EMAIL]")
    pair = jsonl_line(
        folder / f"openai_{rows['preference']['set']}.jsonl", rows["preference"]["line"]
    )
    assert pair["preferred_output"] == [{"role": "assistant", "content": CORRECTED}]
    redacted = PII_ANSWER.replace(EMAIL, "[EMAIL]")
    assert pair["non_preferred_output"] == [{"role": "assistant", "content": redacted}]
    assert [p.name for p in shots.taken] == [
        "01-login.png",
        "02-data-manager-tabs.png",
        "03-task-prelabelled.png",
        "04-answer-edited.png",
        "05-submitted.png",
        "06-label-stream-next-task.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in shots.taken)
