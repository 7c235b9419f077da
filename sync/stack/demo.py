"""`tracetune demo`: the main job end to end on embedded defaults, then where to look.

Starts the local stack, then runs the same commands a user would (printed as it goes): sync the
bundled sample traces, connect the ML backend, pre-label every task. With auto-review it also
reviews the tasks that carry LangSmith feedback, exports them, registers a tiny local base model
as the current one, fine-tunes it and evaluates the fine-tune against it (automatic scores and
a blind comparison project in Label Studio), then says where to look.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from label_studio_sdk import LabelStudio

from tracetune.sync.errors import TracetuneError
from tracetune.sync.review_kinds import Control, Verdict, chat_review_result
from tracetune.sync.stack import local_stack as stack

DEMO_PROJECT = "tracetune demo: docs assistant"
#: Tasks per "retrieve predictions" request, well inside Label Studio's 100 s predict timeout.
PREDICT_CHUNK = 100

Report = Callable[[str], None]


@dataclass
class PrelabelSummary:
    """What the pre-labelling pass left in the project: one prediction per task is the aim."""

    tasks: int
    predictions: int
    model_versions: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)  # tasks per pre-selected flag
    unflagged: int = 0  # tasks with no flag pre-selected

    def line(self) -> str:
        versions = ", ".join(f"{v} ({n})" for v, n in self.model_versions.most_common())
        count = len(self.model_versions)
        return (
            f"{self.tasks} tasks, {self.predictions} predictions, {count} model "
            f"version{'s' if count != 1 else ''}: {versions or 'none'}"
        )


@dataclass
class DemoResult:
    label_studio_url: str
    project_url: str
    username: str
    password: str
    prelabels: PrelabelSummary
    reviewed: Counter[str] = field(default_factory=Counter)
    evaluation: dict[str, Any] = field(default_factory=dict)


def _command(args: list[str], env: dict[str, str], report: Report) -> str:
    """Run one `tracetune` command as a user would, echoing it; fail on a non-zero exit."""
    report(f"$ tracetune {shlex.join(args)}")
    result = subprocess.run(
        [sys.executable, "-m", "tracetune.sync.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = (result.stderr + result.stdout).strip()
    if output:
        report("\n".join(f"  {line}" for line in output.splitlines() if "━" not in line))
    if result.returncode != 0:
        raise TracetuneError(f"`tracetune {args[0]}` failed with exit code {result.returncode}")
    return result.stdout


def _has_current_model(env: dict[str, str]) -> bool:
    """Whether an earlier demo already left a current model in the registry."""
    result = subprocess.run(
        [sys.executable, "-m", "tracetune.sync.cli", "models", "current"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def evaluate_fine_tune(state_dir: Path, env: dict[str, str], report: Report) -> dict[str, Any]:
    """Base model current, fine-tune it (registered as the candidate), evaluate the two."""
    model = state_dir / "tiny-model"
    _command(["finetune", "tiny-model", str(model)], env, report)
    if not _has_current_model(env):
        _command(
            ["models", "register", "--local", str(model), "--description", "demo base"], env, report
        )
        _command(
            ["models", "promote", "candidate", "--reason", "the base model serves first"],
            env,
            report,
        )
    start = ["finetune", "start", "--provider", "local", "--model", str(model)]
    _command([*start, "--param", "max_steps=10", "--now"], env, report)
    printed = _command(["eval", "run", "--max-new-tokens", "24", "--limit", "20"], env, report)
    path = Path(printed.strip().splitlines()[-1].removeprefix("report: "))
    return dict(json.loads(path.read_text()))


def prelabel(client: LabelStudio, project_id: int, report: Report) -> PrelabelSummary:
    """Ask the connected ML backend for predictions of every task (Data Manager action), then
    count what the project holds: predictions, their model versions, the flags per task."""
    listing: Any = client.tasks.list(project=project_id, fields="task_only")
    task_ids = [task.id for task in listing]
    for start in range(0, len(task_ids), PREDICT_CHUNK):
        chunk = task_ids[start : start + PREDICT_CHUNK]
        client.actions.create(
            id="retrieve_tasks_predictions",
            project=project_id,
            selected_items={"all": False, "included": chunk},
        )
        report(f"  pre-labelled {min(start + PREDICT_CHUNK, len(task_ids))}/{len(task_ids)} tasks")
    predictions = list(client.predictions.list(project=project_id))
    summary = PrelabelSummary(tasks=len(task_ids), predictions=len(predictions))
    summary.model_versions.update(str(p.model_version) for p in predictions)
    flags_of: dict[int, set[str]] = {}
    for prediction in predictions:
        for result in prediction.result or []:
            if result.get("from_name") == Control.FLAGS:
                flags_of.setdefault(int(prediction.task), set()).update(result["value"]["choices"])
    for flags in flags_of.values():
        summary.flags.update(flags)
    summary.unflagged = len(task_ids) - sum(1 for flags in flags_of.values() if flags)
    report(f"  {summary.line()}")
    return summary


def _score(task: Any) -> float | None:
    scores = [f.get("score") for f in task.data.get("feedback", []) if f.get("key") == "user_score"]
    return scores[0] if scores and scores[0] is not None else None


def _latest_flags(task: Any) -> list[str]:
    predictions = sorted(task.predictions or [], key=lambda p: str(p.created_at or ""))
    for result in predictions[-1].result or [] if predictions else []:
        if result.get("from_name") == Control.FLAGS:
            return list(result["value"]["choices"])
    return []


def auto_review(client: LabelStudio, project_id: int) -> Counter[str]:
    """Review the tasks that carry LangSmith thumbs, as a reviewer trusting users would.

    Thumbs up: accept, keeping the backend's flags. Thumbs down: edit with a liked answer to
    the same question when one exists (re-asked questions), else reject.
    """
    tasks: list[Any] = list(client.tasks.list(project=project_id, fields="all"))
    liked = {
        task.data["prompt"].strip().lower(): task.data["answer"]
        for task in tasks
        if _score(task) == 1
    }
    decisions: Counter[str] = Counter()
    for task in tasks:
        score = _score(task)
        if score is None or task.annotations:
            continue
        better = liked.get(task.data["prompt"].strip().lower())
        if score == 1:
            verdict, corrected = Verdict.ACCEPT, None
        elif better and better != task.data["answer"]:
            verdict, corrected = Verdict.EDIT, better
        else:
            verdict, corrected = Verdict.REJECT, None
        result = chat_review_result(verdict, corrected, _latest_flags(task))
        client.annotations.create(id=task.id, result=result)
        decisions[verdict.value] += 1
    return decisions


def run_demo(
    state_dir: Path, config: stack.StackConfig, report: Report, review: bool = False
) -> DemoResult:
    state = stack.up(state_dir, config, report=report)
    env = {**os.environ, **stack.stack_env(state), "HF_HUB_OFFLINE": "1"}
    env["TRACETUNE_STATE_DIR"] = str(state_dir)
    _command(["sync", "--project", DEMO_PROJECT], env, report)
    _command(["backend", "connect", "--project", DEMO_PROJECT], env, report)

    ls_url = state.services["label_studio"].url
    client = LabelStudio(base_url=ls_url, api_key=state.token, timeout=300)
    projects: Any = client.projects.list(title=DEMO_PROJECT)
    project = next(p for p in projects if p.title == DEMO_PROJECT)
    report("pre-labelling every task with the ML backend")
    result = DemoResult(
        label_studio_url=ls_url,
        project_url=f"{ls_url}/projects/{project.id}/data",
        username=state.username,
        password=state.password,
        prelabels=prelabel(client, project.id, report),
    )
    if review:
        report("reviewing the tasks that carry LangSmith feedback")
        result.reviewed = auto_review(client, project.id)
        report(f"  {dict(result.reviewed)}")
        _command(["export", DEMO_PROJECT, "--now"], env, report)
        result.evaluation = evaluate_fine_tune(state_dir, env, report)
        report(
            f"evaluation: {result.evaluation['headline']}\n"
            f"  report: {result.evaluation['report_path']}\n"
            f"  blind comparisons to review: {result.evaluation['review']['url']}\n"
            "  then: tracetune eval report "
            f"{result.evaluation['eval_id']}, tracetune models list, tracetune models promote"
        )
    return result
