"""Benchmark: `tracetune sync` of 10,000 runs from the LangSmith stand-in into Label Studio,
against a raw `label-studio-sdk` import of the same prepared tasks, in the same run.

    .venv/bin/python bench/sync.py [--runs 10000]

The last line reads `ratio=<sync/raw>` (target: at most 1.3).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

from _servers import label_studio_and_redis  # noqa: E402
from standins.langsmith import LangSmithStandIn  # noqa: E402

from tracetune.sync.ingest.state import SyncStore  # noqa: E402
from tracetune.sync.ingest.syncer import run_sync  # noqa: E402
from tracetune.sync.label_config import render_label_config  # noqa: E402
from tracetune.sync.label_studio.gateway import LabelStudioGateway  # noqa: E402
from tracetune.sync.langsmith.api_source import LangSmithApiSource, RunSelection  # noqa: E402
from tracetune.sync.langsmith.client import make_client  # noqa: E402
from tracetune.sync.langsmith.from_langsmith import Skip, convert_run  # noqa: E402
from tracetune.sync.redis_client import redis_client  # noqa: E402
from tracetune.sync.review_kinds import ReviewKind  # noqa: E402
from tracetune.sync.settings import Settings  # noqa: E402
from tracetune.sync.task_data import conversation_task  # noqa: E402

BATCH = 2000
API_KEY = "bench-key"
LANGSMITH_PROJECT = "bench-docs-assistant"
TOPICS = ["billing", "API keys", "webhooks", "SSO", "exports", "rate limits", "search", "teams"]


def make_runs(count: int, session_id: str) -> list[dict[str, Any]]:
    """Root chat runs as the SDK ingests them: OpenAI-style messages in, a choice out."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    runs = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        run_id = str(uuid.UUID(int=i + 1))
        started = start + timedelta(seconds=i)
        runs.append(
            {
                "id": run_id,
                "trace_id": run_id,
                "dotted_order": f"{started:%Y%m%dT%H%M%S%fZ}{run_id}",
                "name": "ChatOpenAI",
                "run_type": "llm",
                "session_id": session_id,
                "start_time": started.isoformat(),
                "end_time": (started + timedelta(seconds=1)).isoformat(),
                "inputs": {
                    "messages": [
                        {"role": "system", "content": "You answer questions about Acme Docs."},
                        {"role": "user", "content": f"Question {i}: how do {topic} work?"},
                    ]
                },
                "outputs": {
                    "choices": [
                        {
                            "message": {
                                "role": "assistant",
                                "content": f"Answer {i}: {topic} are configured in Settings. " * 3,
                            }
                        }
                    ]
                },
                "extra": {"metadata": {"user_tier": "pro"}},
                "tags": ["bench"],
            }
        )
    return runs


def raw_import(client: Any, runs: list[dict[str, Any]]) -> float:
    """The baseline: the same tasks, prepared in advance, imported in the same batch size."""
    tasks = []
    for run in runs:
        conversation = convert_run(run)
        assert not isinstance(conversation, Skip)
        tasks.append({"data": conversation_task(conversation, ReviewKind.CHAT)})
    project = client.projects.create(
        title="bench raw import", label_config=render_label_config(ReviewKind.CHAT)
    )
    started = time.perf_counter()
    for offset in range(0, len(tasks), BATCH):
        client.projects.import_tasks(id=project.id, request=tasks[offset : offset + BATCH])
    elapsed = time.perf_counter() - started
    assert client.projects.get(id=project.id).task_number == len(tasks)
    return elapsed


def serve_standin(runs_count: int, ready: Connection, stop: Event) -> None:
    """The stand-in in its own process, as a real LangSmith would be: no shared GIL."""
    with LangSmithStandIn(api_key=API_KEY) as langsmith:
        session = langsmith.store.create_project(LANGSMITH_PROJECT)
        langsmith.store.add_runs(make_runs(runs_count, session))
        ready.send(langsmith.url)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()

    receive, send = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()
    standin = multiprocessing.Process(target=serve_standin, args=(args.runs, send, stop))
    standin.start()
    langsmith_url = receive.recv()
    try:
        raw, synced = measure(args.runs, langsmith_url)
    finally:
        stop.set()
        standin.join(timeout=30)

    print(f"runs={args.runs} batch={BATCH}")
    print(f"raw label-studio-sdk import of prepared tasks: {raw:.2f} s")
    print(f"tracetune sync from the LangSmith stand-in:   {synced:.2f} s")
    print(f"ratio={synced / raw:.2f}")


def measure(runs_count: int, langsmith_url: str) -> tuple[float, float]:
    """Both timings against one fresh Label Studio: the raw import, then the sync."""
    with label_studio_and_redis() as (ls, redis, client):
        runs = make_runs(runs_count, str(uuid.uuid4()))
        settings = Settings(
            label_studio_url=ls.url,
            label_studio_api_key=SecretStr(ls.token),
            redis_url=redis.url,
            langsmith_endpoint=langsmith_url,
            langsmith_api_key=SecretStr(API_KEY),
            import_batch_size=BATCH,
        )

        raw = raw_import(client, runs)

        selection = RunSelection(projects=[LANGSMITH_PROJECT])
        source = LangSmithApiSource(make_client(settings), selection)
        store = SyncStore(redis_client(redis.url), ls.url)
        started = time.perf_counter()
        report = run_sync(source, LabelStudioGateway(settings), "bench sync", state=store)
        synced = time.perf_counter() - started
        assert report.imported == runs_count, report.as_dict()
    return raw, synced


if __name__ == "__main__":
    main()
