"""Benchmark: ML-backend predictions for 1,000 synced tasks against raw PyTorch `model.encode`
of the same texts, in the same run; then the same tasks on the PyTorch backend, to check that
the faster runtime moves no flag and no concept score.

    .venv/bin/python bench/predict.py [--tasks 1000] [--batch 100] [--backend auto]

Tasks are built by the sync's own task-data layout from generated support conversations (some
with PII, code, other languages, refusals, near-duplicates). The backend app is called through
its HTTP protocol (Flask's test client, in process) in batches as Label Studio sends them, on a
fresh Redis, with the embedding runtime `--backend` picks (`auto`: OpenVINO on a CPU). The
floor is sentence-transformers' PyTorch `model.encode` (the reference runtime), loaded beside
it. Both sides start warm: models loaded, built-in concepts trained, and each runs once on
other texts first. Each batch's raw encode runs right before its first prediction, so both see
the same load on a shared machine; the second pass then predicts every batch again. Last, a
backend on the PyTorch runtime (own Redis database: its own caches and concepts) predicts the
same tasks and every task's flags and concept scores are compared.

The last line reads `ratio=<first pass/raw encode> cache_speedup=<first/second>
flags_identical=<tasks>/<tasks> concept_max_diff=<largest concept score difference>`
(targets: at most 0.6, at least 20, all, at most 0.01).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracetune.backend.server.app import create_app
from tracetune.backend.services import Backend
from tracetune.backend.signals import Reads
from tracetune.backend.task_texts import read_task
from tracetune.backend.vectors.embeddings import resolve_model
from tracetune.backend.vectors.encoders import BACKENDS, TorchEncoder
from tracetune.sync.conversation import Conversation, Message
from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import PREDICTION_DETAILS_KEY, ReviewKind
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


Predict = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def predictor(settings: Settings) -> tuple[Backend, float, Predict]:
    """A warm backend (model loaded, built-ins trained) and its `/predict` through HTTP."""
    backend = Backend.create(settings)
    warm_s, _ = timed(backend.ensure_builtins)
    client = create_app(settings, backend=backend, warm_up=False).test_client()
    config = render_label_config(ReviewKind.CHAT)

    def predict(batch: list[dict[str, Any]], project: str = "1.0") -> list[dict[str, Any]]:
        body = {"tasks": batch, "project": project, "label_config": config}
        response = client.post("/predict", json=body)
        if response.status_code != 200:
            raise SystemExit(f"predict failed: {response.status_code} {response.json}")
        return list(response.json["results"])

    warm_tasks = [{"id": 10**6 + i, "data": conversation_task(c, ReviewKind.CHAT)}
                  for i, c in enumerate(conversations(20, seed=99))]  # fmt: skip
    predict(warm_tasks, "999.0")
    return backend, warm_s, predict


def verdicts(results: list[dict[str, Any]]) -> list[tuple[list[str], dict[str, float]]]:
    """Per prediction: the flags that fired and every score (flags and concepts)."""
    found = []
    for prediction in results:
        flags = next(r for r in prediction["result"] if r["from_name"] == "flags")
        found.append((flags["value"]["choices"], flags[PREDICTION_DETAILS_KEY]["scores"]))
    return found


def compare(
    fast: list[tuple[list[str], dict[str, float]]],
    reference: list[tuple[list[str], dict[str, float]]],
) -> tuple[int, float, str]:
    """Tasks whose flags are identical, the largest concept score difference, and where."""
    identical, worst, where = 0, 0.0, ""
    for (fast_flags, fast_scores), (ref_flags, ref_scores) in zip(fast, reference, strict=True):
        identical += fast_flags == ref_flags
        for name, score in ref_scores.items():
            diff = abs(fast_scores[name] - score)
            if diff > worst:
                worst, where = diff, name
    return identical, worst, where


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100, help="tasks per /predict request")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="runtime measured")
    args = parser.parse_args()
    tasks = [{"id": i + 1, "data": conversation_task(c, ReviewKind.CHAT)}
             for i, c in enumerate(conversations(args.tasks))]  # fmt: skip
    batches = [tasks[i : i + args.batch] for i in range(0, len(tasks), args.batch)]
    seen: set[str] = set()
    texts = [batch_texts(batch, seen) for batch in batches]

    with tempfile.TemporaryDirectory(prefix="tracetune-bench-") as tmp:
        redis = start_redis(free_port(), Path(tmp) / "redis", appendonly=False)
        try:
            settings = Settings(redis_url=redis.url, tracetune_embedding_backend=args.backend)
            backend, warm_s, predict = predictor(settings)
            runtime = backend.embedder.model().description
            reference = TorchEncoder(resolve_model(settings.tracetune_embedding_model))
            reference.encode(["warm the model up", "on a few other texts"] * 32, 64)
            batch_size = settings.tracetune_embedding_batch_size

            # Paired: each batch's raw encode right before its first prediction, so both see
            # the same load on a shared machine.
            raw_s = first_s = 0.0
            first: list[dict[str, Any]] = []
            for batch, batch_texts_ in zip(batches, texts, strict=True):
                raw_s += timed(reference.encode, batch_texts_, batch_size)[0]
                elapsed, results = timed(predict, batch)
                first_s += elapsed
                first += results
            second_s, done = timed(lambda: sum(len(predict(batch)) for batch in batches))

            torch_settings = Settings(
                redis_url=redis.url.rsplit("/", 1)[0] + "/1", tracetune_embedding_backend="torch"
            )
            _, _, torch_predict = predictor(torch_settings)
            on_torch = [r for batch in batches for r in torch_predict(batch)]
        finally:
            redis.stop()

    assert done == len(tasks)
    identical, worst, where = compare(verdicts(first), verdicts(on_torch))
    distinct = sum(len(t) for t in texts)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"tasks: {len(tasks)} ({distinct} distinct texts), /predict batches of {args.batch}")
    print(f"embedding runtime: {runtime}; {os.cpu_count()} CPUs, load average {load}")
    print(f"warm-up (model load + built-in concepts trained): {warm_s:.2f} s (not timed below)")
    print(f"raw torch model.encode of the same texts: {raw_s:8.2f} s")
    print(
        f"first pass (empty caches):                {first_s:8.2f} s  ({first_s / raw_s:.2f}x raw)"
    )
    print(f"second pass (same tasks, cached):         {second_s:8.2f} s  "
          f"({first_s / second_s:.1f}x faster than first)")  # fmt: skip
    print(f"against the torch backend: flags identical on {identical}/{len(tasks)} tasks, "
          f"largest concept score difference {worst:.4f} ({where or '-'})")  # fmt: skip
    print(f"ratio={first_s / raw_s:.2f} cache_speedup={first_s / second_s:.1f} "
          f"flags_identical={identical}/{len(tasks)} concept_max_diff={worst:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
