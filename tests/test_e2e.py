"""The whole loop on real servers, as its three kinds of users meet it.

Traces written by real code through the real `langsmith` SDK into the stand-in → `tracetune
sync` → a Label Studio project → predictions from the ML backend (through Label Studio) →
reviews through the SDK (accept, edit, reject, a concept flag) → an export on a real RQ worker
→ the `openai` provider against its stand-in and the `local` provider on a tiny model → the
manifest's lineage leads from every example back to its LangSmith run id.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import langsmith
import pytest
from label_studio_sdk import LabelStudio
from langsmith import traceable
from plugins.backend_server import BackendServer
from plugins.openai_standin import OpenAIStandin
from plugins.rq_worker import wait_for_job
from standins.langsmith import LangSmithStandIn
from worker_env import tracetune, worker_env

from tracetune.sync.review_kinds import (
    PREDICTION_DETAILS_KEY,
    Control,
    Verdict,
    chat_review_result,
)
from tracetune.sync.stack.servers import LabelStudioServer

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

QUESTIONS = [
    "How do I create an API token?",
    "Where do I see the logs of a failed run?",
    "Can a flow trigger another flow?",
    "How many times does a failed task retry?",
    "How do I schedule a flow every weekday at 6am?",
    "Which plans include SSO?",
    "How do I pin a flow to the EU region?",
    "How long are run logs kept?",
    "How do I read files from S3 in a task?",
    "How do I test flows in CI?",
    "How do I rotate a webhook secret?",
    "What network access does a self-hosted agent need?",
    "Your docs are garbage and you are a useless idiot, where is the export button?",
    "Is there a dark mode in the dashboard?",
]
ACCEPTED = QUESTIONS[:10]
EDITED = {QUESTIONS[10]: "Open Settings → Webhooks → Rotate secret; the old one works 24 h."}
REJECTED = QUESTIONS[11:13]
SKIPPED = QUESTIONS[13]
TOXIC = QUESTIONS[12]


def _trace_docs_assistant(standin: LangSmithStandIn, project: str) -> dict[str, str]:
    """A docs assistant traced with `@traceable`, as a team's app would be: run id per question."""
    client = langsmith.Client(api_url=standin.url, api_key=standin.api_key)

    @traceable(run_type="chain", name="docs_assistant", client=client, project_name=project)
    def answer(question: str) -> dict[str, str]:
        return {"answer": f"From the Tidewell docs: {question.rstrip('?').lower()} is explained."}

    run_ids = {}
    for question in QUESTIONS:
        run_id = uuid.uuid4()
        answer(question, langsmith_extra={"run_id": run_id, "tags": ["prod"]})
        run_ids[question] = str(run_id)
    client.flush()
    return run_ids


def _review(client: LabelStudio, tasks: dict[str, Any]) -> None:
    """Reviewers at work: accept, edit, reject, skip, and a toxicity flag on the rude one."""
    for question, task in tasks.items():
        if question == SKIPPED:
            client.annotations.create(id=task.id, result=[], was_cancelled=True)
            continue
        verdict = (
            Verdict.ACCEPT
            if question in ACCEPTED
            else Verdict.EDIT
            if question in EDITED
            else Verdict.REJECT
        )
        flags = ["toxicity"] if question == TOXIC else None
        result = chat_review_result(verdict, EDITED.get(question), flags)
        client.annotations.create(id=task.id, result=result)


def _concept(env: dict[str, str], tmp_path: Path, name: str) -> dict[str, Any]:
    listing = tracetune("concepts", "list", "--json", env=env, cwd=tmp_path)
    return next(c for c in map(json.loads, listing.stdout.splitlines()) if c["name"] == name)


def test_traces_to_fine_tuned_models_with_lineage_back_to_langsmith(
    tmp_path: Path,
    langsmith_standin: LangSmithStandIn,
    langsmith_env: dict[str, str],
    langsmith_project: Callable[[str], str],
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    redis_url: str,
    backend_server: BackendServer,
    openai_api: OpenAIStandin,
    rq_worker: Callable[[dict[str, str]], Any],
) -> None:
    # 1. The app is traced into LangSmith by the real SDK.
    langsmith_name = langsmith_project("app")
    run_ids = _trace_docs_assistant(langsmith_standin, langsmith_name)

    env = worker_env(
        tmp_path,
        redis_url,
        label_studio_server.url,
        label_studio_server.token,
        langsmith_endpoint=langsmith_standin.url,
        langsmith_api_key=langsmith_standin.api_key,
        tracetune_backend_url=backend_server.url,
        basic_auth_user=backend_server.user,
        basic_auth_pass=backend_server.password,
        openai_base_url=openai_api.base_url,
        openai_api_key=openai_api.api_key,
    )
    title = f"e2e docs review {uuid.uuid4().hex[:6]}"

    # 2. An admin syncs the runs into Label Studio and connects the ML backend.
    synced = json.loads(
        tracetune("sync", "-p", title, "-l", langsmith_name, "--json", env=env, cwd=tmp_path).stdout
    )
    assert (synced["fetched"], synced["imported"], synced["kind"]) == (14, 14, "chat_review")
    tracetune("backend", "connect", "-p", title, env=env, cwd=tmp_path)
    project_id = synced["project_id"]
    tasks = {t.data["prompt"]: t for t in label_studio.tasks.list(project=project_id)}
    assert {t.data["run_id"] for t in tasks.values()} == set(run_ids.values())

    # 3. Label Studio asks the backend for pre-labels and stores them.
    label_studio.actions.create(
        id="retrieve_tasks_predictions",
        project=project_id,
        selected_items={"all": False, "included": [t.id for t in tasks.values()]},
    )
    predictions = {p.task: p for p in label_studio.predictions.list(project=project_id)}
    assert set(predictions) == {t.id for t in tasks.values()}
    toxic_flags = next(
        r for r in predictions[tasks[TOXIC].id].result if r["from_name"] == Control.FLAGS
    )
    assert "scores" in toxic_flags[PREDICTION_DETAILS_KEY]
    # Informational: scored on the user's message into the details, never a pre-ticked flag.
    assert "question" not in toxic_flags["value"]["choices"]
    assert toxic_flags[PREDICTION_DETAILS_KEY]["prompt_scores"]["question"] >= 0.5

    # 4. Reviewers decide; the toxicity flag reaches the backend through the webhook.
    backend_env = {**env, "REDIS_URL": backend_server.redis_url}
    toxicity_before = _concept(backend_env, tmp_path, "toxicity")
    _review(label_studio, tasks)
    deadline = time.monotonic() + 120
    while _concept(backend_env, tmp_path, "toxicity")["version"] == toxicity_before["version"]:
        assert time.monotonic() < deadline, "the toxicity concept never retrained"
        time.sleep(1)
    assert _concept(backend_env, tmp_path, "toxicity")["learned"] > toxicity_before["learned"]

    # 5. An export runs on a real RQ worker.
    queued = tracetune("export", title, "--validation", "0", env=env, cwd=tmp_path).stdout
    export_id = queued.split()[2]
    rq_worker(env)
    assert wait_for_job(redis_url, export_id).get_status() == "finished"
    export_dir = next((tmp_path / "exports").glob(f"project-{project_id}/{export_id}"))
    manifest = json.loads((export_dir / "manifest.json").read_text())

    sft = [json.loads(line) for line in (export_dir / "openai_sft.train.jsonl").open()]
    answers = {row["messages"][-2]["content"]: row["messages"][-1]["content"] for row in sft}
    assert set(answers) == set(ACCEPTED) | set(EDITED)
    assert answers[QUESTIONS[10]] == EDITED[QUESTIONS[10]]
    assert answers[ACCEPTED[0]] == tasks[ACCEPTED[0]].data["answer"]
    preference = [
        json.loads(line) for line in (export_dir / "openai_preference.train.jsonl").open()
    ]
    assert [p["preferred_output"][0]["content"] for p in preference] == [EDITED[QUESTIONS[10]]]

    # 6. Every example leads back to its LangSmith run.
    lineage = manifest["lineage"]
    by_run = {run_id: question for question, run_id in run_ids.items()}
    sft_lineage = [row for row in lineage if row["set"] == "sft.train"]
    assert len(sft_lineage) == len(sft) == 11
    for row in sft_lineage:
        (run_id,) = row["run_ids"]
        question = by_run[run_id]
        assert label_studio.tasks.get(id=row["task_id"]).data["run_id"] == run_id
        assert row["decision"] == ("edited" if question in EDITED else "accepted")
    assert not {by_run[r] for row in lineage for r in row["run_ids"]} & ({SKIPPED} | {TOXIC})

    # 7. Fine-tuning: OpenAI (stand-in, through the real SDK) and a local tiny model.
    started = tracetune(
        "finetune", "start", "--provider", "openai", "--model", "gpt-4o-mini-2024-07-18",
        "--export", export_id, "--suffix", "docs-qa", "--now", "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    record_id = json.loads(started.stdout)["id"]
    deadline = time.monotonic() + 120
    while status := tracetune("finetune", "status", record_id, "--json", env=env, cwd=tmp_path):
        record = json.loads(status.stdout)
        if record["status"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, record
        time.sleep(1)
    assert record["status"] == "succeeded", record
    uploaded = openai_api.state.contents[
        openai_api.state.jobs[record["provider_job_id"]]["training_file"]
    ]
    assert uploaded == (export_dir / "openai_sft.train.jsonl").read_bytes()

    model = tmp_path / "tiny-model"
    tracetune("finetune", "tiny-model", str(model), env=env, cwd=tmp_path)
    local = tracetune(
        "finetune", "start", "--provider", "local", "--model", str(model), "--export", export_id,
        "--param", "max_steps=3", "--now", "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    local_record = json.loads(local.stdout)
    assert local_record["status"] == "succeeded", local_record
    assert Path(local_record["fine_tuned_model"]).is_dir()
