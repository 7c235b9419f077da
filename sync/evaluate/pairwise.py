"""Blind pairwise review in Label Studio: two answers per held-out prompt, reviewers pick.

The project is an ordinary preference-pair project (the same generated label config the sync
uses, with `tie` and `both_bad` among its flags), so reviewers know the screen and the export
can turn their picks into DPO pairs later. Tasks say nothing about which model wrote which
answer: A and B are drawn per prompt from the evaluation id, and the mapping stays in the
evaluation's folder on this machine, never in Label Studio. A second evaluation extends the
same project (`TRACETUNE_EVAL_PROJECT`, default below); tasks are keyed by
`eval:<eval id>:<example id>`, so a rerun adds only what is missing.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from tracetune.sync.conversation import Conversation, Message
from tracetune.sync.evaluate.heldout import HeldOutExample
from tracetune.sync.evaluate.stats import Outcome
from tracetune.sync.label_config import check_config, render_label_config
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.label_studio.task_reader import TaskReader
from tracetune.sync.review_kinds import Control, ReviewKind
from tracetune.sync.settings import Settings
from tracetune.sync.task_data import pair_task

DEFAULT_PROJECT = "tracetune model comparisons"
#: Flags of the comparison project: a tie (both fine, or both bad) is not a pick.
TIE_FLAGS = ("tie", "both_bad")
PAIRWISE_FLAGS = (*TIE_FLAGS, "pii", "secret", "toxicity", "refusal", "non_english")
IMPORT_BATCH = 500

Role = Literal["candidate", "baseline"]


def shown_as_a(eval_id: str, examples: Iterable[HeldOutExample]) -> dict[str, Role]:
    """Which model's answer is A, per example: a coin flip seeded by the evaluation."""
    sides: dict[str, Role] = {}
    for example in examples:
        seed = hashlib.sha256(f"{eval_id}\0{example.id}".encode()).digest()
        sides[example.id] = "candidate" if random.Random(seed).random() < 0.5 else "baseline"
    return sides


def task_key(eval_id: str, example_id: str) -> str:
    return f"eval:{eval_id}:{example_id}"


def _conversation(key: str, example: HeldOutExample, answer: str) -> Conversation:
    # Roles and text only: reviewers compare the final answers, tool-call details aside.
    messages = [
        Message(role=m["role"], content=str(m.get("content") or "")) for m in example.prompt
    ]
    messages.append(Message(role="assistant", content=answer))
    return Conversation(run_id=key, messages=messages, source_shape="evaluation")


def pair_tasks(
    eval_id: str,
    examples: Sequence[HeldOutExample],
    sides: Mapping[str, Role],
    answers: Mapping[str, Mapping[str, str]],
) -> list[dict[str, Any]]:
    """Task data of each comparison: the prompt and the two answers, nothing about models."""
    tasks = []
    for example in examples:
        a_role = sides[example.id]
        b_role: Role = "baseline" if a_role == "candidate" else "candidate"
        key = task_key(eval_id, example.id)
        data = pair_task(
            _conversation(f"{key}:A", example, answers[a_role][example.id]),
            _conversation(f"{key}:B", example, answers[b_role][example.id]),
        )
        data.update(run_id=key, run_id_a="A", run_id_b="B", eval_id=eval_id)
        tasks.append(data)
    return tasks


def label_config() -> str:
    return render_label_config(ReviewKind.PREFERENCE, flags=PAIRWISE_FLAGS)


def publish(
    settings: Settings, title: str, tasks: Sequence[dict[str, Any]]
) -> tuple[int, str, int]:
    """Create or extend the comparison project; (project id, URL, tasks added)."""
    gateway = LabelStudioGateway(settings)
    gateway.check()
    config = label_config()
    if tasks:
        check_config(config, tasks[0])
    project = gateway.ensure_project(
        title,
        config,
        description="Blind comparisons of two models' answers to held-out prompts (tracetune eval)",
    )
    project_id = int(project.id)
    present = {task.run_id for task in gateway.run_tasks(project_id)}
    missing = [task for task in tasks if task["run_id"] not in present]
    added = 0
    for start in range(0, len(missing), IMPORT_BATCH):
        added += gateway.import_tasks(project_id, missing[start : start + IMPORT_BATCH])
    return project_id, gateway.project_url(project_id), added


def _pick(annotation: Mapping[str, Any]) -> str | None:
    """`A`, `B` or `tie` from one annotation; None when the reviewer decided nothing."""
    flags: set[str] = set()
    for result in annotation.get("result") or []:
        value = result.get("value") or {}
        if result.get("from_name") == Control.PREFERENCE.value:
            selected = value.get("selected")
            if selected in ("left", "right"):
                return "A" if selected == "left" else "B"
        if result.get("from_name") == Control.FLAGS.value:
            flags.update(value.get("choices") or [])
    return "tie" if flags & set(TIE_FLAGS) else None


def task_verdict(task: Mapping[str, Any]) -> str | None:
    """The ground-truth annotation's pick, else the majority's, else the latest one's."""
    annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    for annotation in annotations:
        if annotation.get("ground_truth"):
            return _pick(annotation)
    picks = [(str(a.get("updated_at") or ""), int(a.get("id") or 0), _pick(a)) for a in annotations]
    picks = [p for p in picks if p[2] is not None]
    if not picks:
        return None
    counted = Counter(pick for _, _, pick in picks)
    top = max(counted.values())
    leaders = {pick for pick, count in counted.items() if count == top}
    return max((p for p in picks if p[2] in leaders), key=lambda p: (p[0], p[1]))[2]


def read_verdicts(
    settings: Settings, project_id: int, eval_id: str, sides: Mapping[str, Role]
) -> tuple[dict[str, Outcome], int]:
    """The reviewers' outcome per example, and how many of its tasks are still open."""
    prefix = task_key(eval_id, "")
    outcomes: dict[str, Outcome] = {}
    open_tasks = 0
    with TaskReader(settings) as reader:
        for page in reader.pages(project_id):
            for task in page:
                key = str((task.get("data") or {}).get("run_id", ""))
                if not key.startswith(prefix):
                    continue
                example_id = key.removeprefix(prefix)
                verdict = task_verdict(task)
                if verdict is None or example_id not in sides:
                    open_tasks += 1
                    continue
                a_role = sides[example_id]
                b_role: Role = "baseline" if a_role == "candidate" else "candidate"
                outcomes[example_id] = (
                    "tie" if verdict == "tie" else a_role if verdict == "A" else b_role
                )
    return outcomes, open_tasks
