"""Benchmark: ML-backend predictions for 1,000 synced tasks against raw `model.encode` of the same
texts, in the same run.

    .venv/bin/python bench/predict.py [--tasks 1000] [--batch 100]

Tasks are built by the sync's own task-data layout from generated support conversations (some
with PII, code, other languages, refusals, near-duplicates). The backend app is called through
its HTTP protocol (Flask's test client, in process) in batches as Label Studio sends them, on a
fresh Redis. Both sides start warm: the model is loaded and the built-in concepts trained
before anything is timed, and `model.encode` runs once on other texts first. Each batch's raw
encode runs right before its first prediction, so both sides see the same load on a shared
machine; the second pass then predicts every batch again.

The last line reads `ratio=<first pass/raw encode> cache_speedup=<first/second>` (targets: at
most 1.3, at least 10).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tracetune.backend.server.app import create_app
from tracetune.backend.services import Backend
from tracetune.backend.signals import Reads
from tracetune.backend.task_texts import read_task
from tracetune.sync.conversation import Conversation, Message
from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import free_port, start_redis
from tracetune.sync.task_data import conversation_task

TOPICS = ["invoices", "API keys", "webhooks", "single sign-on", "CSV exports", "rate limits",
          "search filters", "team seats", "audit logs", "data retention"]  # fmt: skip
ASKS = [
    "How do I configure {topic} for my workspace?",
    "Why did {topic} stop working after yesterday's update? I tried restarting twice.",
    "Can you explain the difference between the old and the new {topic} settings?",
    "Our admin says {topic} are limited on the Pro plan. Is that true, and what are the limits?",
    "Write me a short guide on {topic} for new teammates.",
]
ANSWERS = [
    "Open Settings, choose {topic}, and enable the option for your workspace. Changes apply "
    "within a minute; if they do not, sign out and back in. Admins can also set defaults for "
    "every project from the organisation page, and members inherit them unless they override.",
    "After the update, {topic} moved under Settings > Advanced. Your previous configuration was "
    "kept, but the toggle is off by default. Turn it on, save, and run a test from the same "
    "page; the log at the bottom shows the last ten attempts with their status codes.",
    "The new {topic} settings are per project instead of per workspace. That means two projects "
    "can now behave differently. The old global switch still exists and acts as the default "
    "for projects that never changed it.",
    "Yes: the Pro plan includes {topic} with a monthly limit of 10,000 operations. Enterprise "
    "removes the limit. You can see your current usage on the Billing page, updated hourly.",
]
EXTRAS = [
    " My email is {name}@example.com if you need it.",
    " Here is my config:\n```yaml\nretries: 3\ntimeout: 30\n```",
    " Our key is sk-proj-{token} but it was rotated.",
    "",
    "",
    "",
]
GERMAN = (
    "Wie richte ich {topic} für meinen Arbeitsbereich ein?",
    "Öffnen Sie die Einstellungen, wählen Sie {topic} und aktivieren Sie die Option.",
)
REFUSAL = "I'm sorry, but I can't help with that request."
NAMES = ["jane", "omar", "li.wei", "maria", "tom"]


def conversations(count: int, seed: int = 7) -> list[Conversation]:
    rng = random.Random(seed)
    made: list[Conversation] = []
    for i in range(count):
        topic = rng.choice(TOPICS)
        if i % 20 == 19 and made:  # a near-duplicate of an earlier task
            earlier = made[rng.randrange(len(made))]
            messages = [m.model_copy() for m in earlier.messages]
            messages[-1] = Message(role="assistant", content=messages[-1].content + " Thanks!")
        elif i % 25 == 24:
            ask, answer = GERMAN
            messages = [
                Message(role="user", content=ask.format(topic=topic)),
                Message(role="assistant", content=answer.format(topic=topic)),
            ]
        else:
            extra = rng.choice(EXTRAS).format(
                name=rng.choice(NAMES), token=f"{rng.getrandbits(160):040x}"
            )
            ask = rng.choice(ASKS).format(topic=topic) + f" (ticket {i})" + extra
            answer = REFUSAL if i % 30 == 29 else rng.choice(ANSWERS).format(topic=topic)
            messages = [Message(role="system", content="You are Acme's support assistant."),
                        Message(role="user", content=ask),
                        Message(role="assistant", content=f"{answer} (ref {i})")]  # fmt: skip
        made.append(Conversation(run_id=f"run-{i}", messages=messages, source_shape="bench"))
    return made


def timed(work: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work(*args)
    return time.perf_counter() - start, result


def batch_texts(batch: list[dict[str, Any]], seen: set[str]) -> list[str]:
    """The texts of a batch the predictor embeds (distinct, not embedded by an earlier batch)."""
    texts = []
    for i, task in enumerate(batch):
        for text in read_task(task, i, ReviewKind.CHAT, 10**6).texts(Reads.ALL).values():
            if text not in seen:
                seen.add(text)
                texts.append(text)
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100, help="tasks per /predict request")
    args = parser.parse_args()
    config = render_label_config(ReviewKind.CHAT)
    tasks = [{"id": i + 1, "data": conversation_task(c, ReviewKind.CHAT)}
             for i, c in enumerate(conversations(args.tasks))]  # fmt: skip
    batches = [tasks[i : i + args.batch] for i in range(0, len(tasks), args.batch)]
    seen: set[str] = set()
    texts = [batch_texts(batch, seen) for batch in batches]

    with tempfile.TemporaryDirectory(prefix="tracetune-bench-") as tmp:
        redis = start_redis(free_port(), Path(tmp) / "redis", appendonly=False)
        try:
            settings = Settings(redis_url=redis.url)
            backend = Backend.create(settings)
            warm_s, _ = timed(backend.ensure_builtins)  # loads the model, trains built-ins
            client = create_app(settings, backend=backend, warm_up=False).test_client()

            def predict(batch: list[dict[str, Any]], project: str = "1.0") -> int:
                body = {"tasks": batch, "project": project, "label_config": config}
                response = client.post("/predict", json=body)
                if response.status_code != 200:
                    raise SystemExit(f"predict failed: {response.status_code} {response.json}")
                return len(response.json["results"])

            warm_tasks = [{"id": 10**6 + i, "data": conversation_task(c, ReviewKind.CHAT)}
                          for i, c in enumerate(conversations(20, seed=99))]  # fmt: skip
            predict(warm_tasks, project="999.0")
            backend.embedder.encode(["warm the model up", "on a few other texts"] * 32)

            # Paired: each batch's raw encode right before its first prediction, so both see
            # the same load on a shared machine.
            raw_s = first_s = 0.0
            for batch, batch_texts_ in zip(batches, texts, strict=True):
                raw_s += timed(backend.embedder.encode, batch_texts_)[0]
                first_s += timed(predict, batch)[0]
            second_s, done = timed(lambda: sum(predict(batch) for batch in batches))
        finally:
            redis.stop()

    assert done == len(tasks)
    distinct = sum(len(t) for t in texts)
    print(f"tasks: {len(tasks)} ({distinct} distinct texts), /predict batches of {args.batch}")
    print(f"warm-up (model load + built-in concepts trained): {warm_s:.2f} s (not timed below)")
    print(f"raw model.encode of the same texts:  {raw_s:8.2f} s")
    print(f"first pass (empty caches):           {first_s:8.2f} s  ({first_s / raw_s:.2f}x raw)")
    print(f"second pass (same tasks, cached):    {second_s:8.2f} s  "
          f"({first_s / second_s:.1f}x faster than first)")  # fmt: skip
    print(f"ratio={first_s / raw_s:.2f} cache_speedup={first_s / second_s:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
