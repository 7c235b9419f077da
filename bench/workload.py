"""Support conversations for the size tiers: distinct texts at any count, a few planted twins.

The 1,000-task benchmark's templates differ by a ticket number, so at 100,000 tasks nearly
every task would be a near-duplicate of hundreds of others; real projects are more varied.
Here each prompt and answer draws a product area, an object, an action, a symptom and a
context from independent lists (about 10^7 combinations), with a ticket number, and every
50th task repeats an earlier one with a small edit: what the near-duplicate index must find.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from tracetune.sync.conversation import Conversation, Message
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.task_data import conversation_task

AREAS = ["billing", "the API", "webhooks", "single sign-on", "CSV exports", "rate limits",
         "search", "team seats", "audit logs", "data retention", "the mobile app", "invoices",
         "the CLI", "dashboards", "alerts", "permissions", "backups", "integrations",
         "the Slack bot", "usage reports"]  # fmt: skip
OBJECTS = ["a project", "my workspace", "an API token", "a scheduled job", "a custom field",
           "the staging environment", "a saved view", "an invoice", "a webhook endpoint",
           "a user group", "a data source", "the retention policy", "a dashboard widget",
           "an alert rule", "a service account", "a template", "a tag", "a report",
           "an SSO connection", "a billing contact"]  # fmt: skip
ACTIONS = ["create", "delete", "rename", "move", "export", "share", "duplicate", "archive",
           "restore", "configure", "audit", "migrate", "schedule", "limit", "merge"]  # fmt: skip
SYMPTOMS = ["it times out after thirty seconds", "the button is greyed out",
            "I get a 403 error", "nothing happens", "the page shows an empty list",
            "the numbers do not match the invoice", "it worked yesterday but not today",
            "the request returns 429", "it asks me to log in again",
            "the export file is empty", "the change does not show up for my teammates",
            "the API returns a validation error about the name field"]  # fmt: skip
CONTEXTS = ["We are on the Pro plan.", "I am an admin.", "This is for a customer demo.",
            "Our security team needs this by Friday.", "We use the EU region.",
            "I tried in Firefox and Chrome.", "We have about 300 users.",
            "It is urgent.", "We migrated from the old version last month.", ""]  # fmt: skip
STEPS = ["open Settings", "choose the {area} tab", "select {object}", "click {action}",
         "confirm in the dialog", "wait for the green banner", "refresh the page",
         "check the activity log", "ask an owner to approve it",
         "use the bulk editor instead"]  # fmt: skip


def _conversation(rng: random.Random, index: int) -> Conversation:
    area, obj, action = rng.choice(AREAS), rng.choice(OBJECTS), rng.choice(ACTIONS)
    ask = (f"How do I {action} {obj} in {area}? When I try, {rng.choice(SYMPTOMS)}. "
           f"{rng.choice(CONTEXTS)} (ticket {index})")  # fmt: skip
    steps = rng.sample(STEPS, 3)
    steps_text = ", then ".join(steps).format(area=area, object=obj, action=action)
    answer = (f"To {action} {obj}, {steps_text}. If {rng.choice(SYMPTOMS)}, contact support "
              f"with ticket {index}.")  # fmt: skip
    messages = [Message(role="user", content=ask), Message(role="assistant", content=answer)]
    return Conversation(run_id=f"run-{index}", messages=messages, source_shape="bench")


def tasks(start: int, count: int, seed: int = 11) -> Iterator[dict[str, Any]]:
    """Label Studio tasks `start + 1 … start + count` (ids), generated lazily."""
    for index in range(start, start + count):
        rng = random.Random(seed * 1_000_003 + index)
        if index % 50 == 49 and index > 50:  # a twin of an earlier task, lightly edited
            twin = _conversation(random.Random(seed * 1_000_003 + rng.randrange(index)), index)
            twin.messages[-1] = Message(
                role="assistant", content=twin.messages[-1].content + " Thanks!"
            )
            conversation = twin
        else:
            conversation = _conversation(rng, index)
        yield {"id": index + 1, "data": conversation_task(conversation, ReviewKind.CHAT)}
