"""Review projects built in the real Label Studio through the SDK, one decision per task.

Shared by the export, worker and benchmark code: tasks are imported the way the sync imports
them, predictions carry the ML backend's details, and annotations are created through the SDK
exactly as a reviewer's submit would store them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from export_helpers import chat_data, details_result, pair_data, preference, verdict
from label_studio_sdk import LabelStudio

from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import Obj, ReviewKind

SYSTEM = {"role": "system", "content": "You are the docs assistant."}


@dataclass
class ReviewProject:
    id: int
    title: str
    tasks: dict[str, int] = field(default_factory=dict)
    annotations: dict[str, int] = field(default_factory=dict)


def create_project(client: LabelStudio, title: str, kind: ReviewKind) -> int:
    project = client.projects.create(title=title, label_config=render_label_config(kind))
    return int(project.id or 0)


def import_tasks(client: LabelStudio, project_id: int, data: list[dict[str, Any]]) -> list[int]:
    """Import in one request and return the new task ids in import order."""
    client.projects.import_tasks(id=project_id, request=[{"data": d} for d in data])
    listed = client.tasks.list(project=project_id, page_size=1000, fields="task_only")
    by_run = {t.data["run_id"]: int(t.id or 0) for t in listed}
    return [by_run[d["run_id"]] for d in data]


def annotate(client: LabelStudio, task_id: int, result: list[dict[str, Any]], **kw: Any) -> int:
    return int(client.annotations.create(id=task_id, result=result, **kw).id or 0)


#: The chat project: (key, question, answer) in import order.
CHAT_TASKS: list[tuple[str, str, str]] = [
    ("accepted", "How do I reset my password?", "Use the reset link on the login page."),
    ("edited", "Where are invoices?", "Somewhere in the app."),
    ("rejected_paired", "How do I reset my password?", "Call support."),
    ("rejected", "Can I pay by cheque?", "No idea."),
    ("skipped", "What is SSO?", "Single sign-on."),
    ("unreviewed", "Is there a dark mode?", "Yes, under Appearance."),
    ("majority", "How do I invite a teammate?", "Email them."),
    ("ground_truth", "How do I delete my account?", "Just stop paying."),
    ("pii", "Who can help me with billing?", "Write to jane.doe@example.com for billing."),
    ("pii_unlabelled", "Who is the admin?", "Ask Bob Stone, he is the admin."),
    ("toxic", "Why is the export slow?", "Because you are impatient."),
    ("duplicate", "How do I reset my password??", "Use the reset link on the login page!"),
]


def build_chat_project(client: LabelStudio, title: str) -> ReviewProject:
    """Twelve chat tasks, each reviewed into one decision or filter case (see CHAT_TASKS)."""
    project = ReviewProject(create_project(client, title, ReviewKind.CHAT), title)
    data = [chat_data(f"run-{key}", q, a) for key, q, a in CHAT_TASKS]
    ids = import_tasks(client, project.id, data)
    project.tasks = {key: task_id for (key, _, _), task_id in zip(CHAT_TASKS, ids, strict=True)}
    t, a = project.tasks, project.annotations
    for key, task_id in t.items():
        details: dict[str, Any] = {"cluster_id": f"c-{key}"}
        if key in ("accepted", "duplicate"):
            details["cluster_id"] = "c-reset"
        if key == "toxic":
            details["scores"] = {"toxicity": 0.93}
        if key == "pii_unlabelled":
            details["pii_types"] = ("PERSON",)
        client.predictions.create(
            task=task_id, result=details_result(**details), score=0.5, model_version="signals-v1"
        )
    a["accepted"] = annotate(client, t["accepted"], verdict("accept", flags=("question",)))
    a["edited"] = annotate(
        client, t["edited"], verdict("edit", corrected="Open Billing, then Invoices.")
    )
    a["rejected_paired"] = annotate(client, t["rejected_paired"], verdict("reject"))
    a["rejected"] = annotate(client, t["rejected"], verdict("reject"))
    a["skipped"] = annotate(client, t["skipped"], [], was_cancelled=True)
    annotate(client, t["majority"], verdict("accept"))
    annotate(client, t["majority"], verdict("edit", corrected="Open Team and click Invite."))
    a["majority"] = annotate(
        client,
        t["majority"],
        verdict("edit", corrected="Open Team, click Invite, enter the email."),
    )
    annotate(client, t["ground_truth"], verdict("accept"))
    annotate(client, t["ground_truth"], verdict("accept"))
    a["ground_truth"] = annotate(
        client,
        t["ground_truth"],
        verdict("edit", corrected="Open Profile, then Delete account."),
        ground_truth=True,
    )
    email = "jane.doe@example.com"
    a["pii"] = annotate(
        client,
        t["pii"],
        verdict("accept", flags=("pii",), pii=(("EMAIL", email, 9),)),
    )
    a["pii_unlabelled"] = annotate(client, t["pii_unlabelled"], verdict("accept"))
    a["toxic"] = annotate(client, t["toxic"], verdict("accept"))
    a["duplicate"] = annotate(client, t["duplicate"], verdict("accept"))
    return project


def build_preference_project(client: LabelStudio, title: str) -> ReviewProject:
    project = ReviewProject(create_project(client, title, ReviewKind.PREFERENCE), title)
    data = [
        pair_data("pa1", "pb1", "Summarise the release.", "Faster exports.", "Stuff changed."),
        pair_data("pa2", "pb2", "Name the plan.", "It is unclear.", "The Pro plan."),
    ]
    ids = import_tasks(client, project.id, data)
    project.tasks = {"left": ids[0], "right": ids[1]}
    for task_id in ids:
        client.predictions.create(
            task=task_id,
            result=details_result(to_name=Obj.ANSWER_A.value),
            score=0.5,
            model_version="signals-v1",
        )
    project.annotations["left"] = annotate(client, ids[0], preference("left"))
    project.annotations["right"] = annotate(client, ids[1], preference("right"))
    return project
