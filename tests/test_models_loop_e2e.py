"""The update loop end to end on real servers (Label Studio, Redis, an RQ worker, MLflow's
SQLite registry): two local fine-tunes of a tiny model from two exports, each evaluated against
the current model with automatic scores and a blind pairwise project answered through the SDK;
the better one is promoted, the worse one refused; a rollback restores the model before; the
registry holds the whole history."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from export_helpers import preference
from finetune_exports import recorded_export
from label_studio_sdk import LabelStudio
from worker_env import tracetune, worker_env

from tracetune.sync.finetune.records import FineTuneRecord, FineTuneRecords
from tracetune.sync.review_kinds import Control, Obj

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _wait_done(redis_url: str, record_id: str, timeout_s: float = 240) -> FineTuneRecord:
    records = FineTuneRecords(redis.Redis.from_url(redis_url))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = records.get(record_id)
        if record.done and record.model_version is not None:
            return record
        time.sleep(0.5)
    raise AssertionError(f"{record_id}: {records.get(record_id)}")


def _tie() -> list[dict[str, Any]]:
    return [
        {
            "from_name": Control.FLAGS.value,
            "to_name": Obj.DIALOGUE.value,
            "type": "choices",
            "value": {"choices": ["tie"]},
        }
    ]


def _review(
    client: LabelStudio, report: dict[str, Any], state: Path, prefer: str, ties: int = 0
) -> int:
    """A reviewer who, whatever the order on screen, prefers one model's answers.

    The test reads the evaluation's side file (which never reaches Label Studio) only to play
    a reviewer with a known taste; the first `ties` tasks are marked as ties instead.
    """
    eval_id = report["eval_id"]
    sides = json.loads((state / "evals" / eval_id / "sides.json").read_text())
    tasks = list(client.tasks.list(project=report["plan"]["review_project_id"], fields="all"))
    mine = [t for t in tasks if t.data["run_id"].startswith(f"eval:{eval_id}:")]
    for index, task in enumerate(mine):
        example = task.data["run_id"].removeprefix(f"eval:{eval_id}:")
        if index < ties:
            result = _tie()
        else:
            result = preference("left" if sides[example] == prefer else "right")
        client.annotations.create(id=task.id, result=result)
    return len(mine)


def test_two_fine_tunes_are_evaluated_promoted_or_refused_and_rolled_back(
    tmp_path: Path,
    redis_url: str,
    label_studio_server: Any,
    label_studio: LabelStudio,
    rq_worker: Any,
    project_title: str,
) -> None:
    state = tmp_path / "state"
    env = worker_env(
        tmp_path,
        redis_url,
        label_studio_server.url,
        label_studio_server.token,
        tracetune_registry_uri=f"sqlite:///{tmp_path / 'registry.db'}",
    )

    def run(*args: str, check: bool = True) -> Any:
        return tracetune(*args, env=env, cwd=tmp_path, check=check)

    tiny = tmp_path / "tiny"
    run("finetune", "tiny-model", str(tiny))
    assert "registered v1" in run("models", "register", "--local", str(tiny)).stdout
    run("models", "promote", "1", "--reason", "the base model serves today", "--by", "ana")

    # Fine-tune A from the first export, trained by a real worker: registered as v2.
    recorded_export(tmp_path, redis_url, reviewed=30, export_id="x-first")
    started = run("finetune", "start", "--provider", "local", "--model", str(tiny),
                  "--param", "max_steps=8", "--json")  # fmt: skip
    rq_worker(env)
    first = _wait_done(redis_url, json.loads(started.stdout)["id"])
    assert (first.status, first.model_version) == ("succeeded", 2)
    lineage = json.loads(run("models", "show", "2", "--json").stdout)["lineage"]
    assert lineage["export_id"] == "x-first"
    assert lineage["finetune_job"] == first.id
    assert len(lineage["manifest_sha256"]) == 64
    assert lineage["training"]["steps"] == 8

    # Evaluate v2 against the current v1: automatic scores, and a blind Label Studio project.
    evaluated = run("eval", "run", "--candidate", "2", "--max-new-tokens", "12",
                    "--review-project", project_title, "--json")  # fmt: skip
    report = json.loads(evaluated.stdout)
    examples = len(report["plan"]["example_ids"])
    assert examples >= 3
    assert report["plan"]["export_id"] == "x-first"
    for role in ("candidate", "baseline"):
        assert 0 <= report["models"][role]["similarity"] <= 1
        assert report["models"][role]["answers"] == examples
    assert report["win_rates"]["automatic"]["comparisons"] == examples
    assert report["review"]["open"] == examples

    tasks = list(label_studio.tasks.list(project=report["plan"]["review_project_id"], fields="all"))
    assert len(tasks) == examples
    for task in tasks:
        shown = json.dumps(task.data)
        for secret in ("candidate", "baseline", str(tiny), first.id, "finetunes"):
            assert secret not in shown  # nothing on screen or in the data says which is which
        assert task.data["answer_a"] != "" and task.data["answer_b"] != ""
    again = run("eval", "run", "--candidate", "2", "--max-new-tokens", "12",
                "--review-project", project_title, "--json")  # fmt: skip
    assert json.loads(again.stdout)["eval_id"] == report["eval_id"]
    assert (
        len(list(label_studio.tasks.list(project=report["plan"]["review_project_id"]))) == examples
    )

    assert _review(label_studio, report, state, prefer="candidate", ties=1) == examples
    verdict = json.loads(run("eval", "report", report["eval_id"], "--json").stdout)
    reviewers = verdict["win_rates"]["reviewers"]
    assert (reviewers["wins"], reviewers["losses"], reviewers["ties"]) == (examples - 1, 0, 1)
    assert verdict["preference_source"] == "reviewers"
    assert verdict["review"] == {**verdict["review"], "answered": examples, "open": 0}
    table = run("eval", "report", report["eval_id"]).stdout
    assert f"win rate by reviewers: {reviewers['win_rate']:.2f}" in table

    promoted = run("models", "promote", "2", "--reason", "reviewers prefer it", "--by", "ben")
    assert "current is now v2" in promoted.stdout
    assert run("models", "current").stdout.strip() == first.fine_tuned_model

    # Fine-tune B from the second export (more reviews), inline: v3, which reviewers dislike.
    recorded_export(tmp_path, redis_url, reviewed=45, export_id="x-second")
    second = run("finetune", "start", "--provider", "local", "--model", str(tiny),
                 "--param", "max_steps=2", "--now", "--json")  # fmt: skip
    second_record = FineTuneRecord.model_validate_json(second.stdout.strip().splitlines()[-1])
    assert second_record.model_version == 3
    args = ("--max-new-tokens", "12", "--review-project", project_title, "--json")
    worse = json.loads(run("eval", "run", *args).stdout)
    assert (worse["plan"]["candidate_version"], worse["plan"]["baseline_version"]) == (3, 2)
    _review(label_studio, worse, state, prefer="baseline")
    worse = json.loads(run("eval", "report", worse["eval_id"], "--json").stdout)
    assert worse["worse"]
    assert worse["win_rates"]["reviewers"]["interval_95"][1] < 0.5

    refused = run("models", "promote", "3", "--reason", "newer data", check=False)
    assert refused.returncode == 8
    assert refused.stderr.startswith("error: not promoting v3: reviewers win rate 0.00")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert run("models", "current").stdout.strip() == first.fine_tuned_model

    rolled = run("models", "rollback", "--reason", "complaints after the release", "--by", "cleo")
    assert "current is now v1" in rolled.stdout
    assert run("models", "current").stdout.strip() == str(tiny.resolve())

    history = [json.loads(line) for line in run("models", "history", "--json").stdout.splitlines()]
    assert [(e["action"], e["version"]) for e in history] == [
        ("registered", 1),
        ("promoted", 1),
        ("registered", 2),
        ("evaluated", 2),  # automatic scores only
        ("evaluated", 2),  # with the reviewers' picks (a rerun with no news adds nothing)
        ("promoted", 2),
        ("registered", 3),
        ("evaluated", 3),
        ("evaluated", 3),
        ("promotion_refused", 3),
        ("rolled_back", 1),
    ]
    assert [e["by"] for e in history if e["action"] in ("promoted", "rolled_back")] == [
        "ana",
        "ben",
        "cleo",
    ]
    shown = run("models", "show", "3").stdout
    assert "blocks promotion: reviewers win rate 0.00" in shown
    listed = run("models", "list").stdout
    assert listed.splitlines()[0].startswith("v3    candidate")
