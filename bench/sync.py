"""Benchmark: `tracetune sync` of 10,000 runs from the LangSmith stand-in into Label Studio,
against a raw `label-studio-sdk` import of the same prepared tasks, in the same run.

    .venv/bin/python bench/sync.py [--runs 10000]

The last line reads `ratio=<sync/raw>` (target: at most 1.15).

    .venv/bin/python bench/sync.py --memory [--sizes 2000,20000] [--label-studio]

measures peak memory instead: for each size, a fresh process reads RAG traces (a root chain
and its retriever child each) from the stand-in through `LangSmithApiSource` and converts
them, as the sync does; with `--label-studio`, a second one runs the whole sync into Label
Studio. The baseline, measured in the same run, is a process that imports and connects but
reads nothing. The last line reads `rss_growth_ratio=<growth at the largest size / growth at
the smallest>`: about 1 when memory stays flat as runs grow (target: at most 1.5).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
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


def make_rag_traces(count: int, session_id: str) -> list[dict[str, Any]]:
    """RAG traces: a root chain answering from the three documents of its retriever child."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    runs = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        root_id, child_id = str(uuid.UUID(int=2 * i + 1)), str(uuid.UUID(int=2 * i + 2))
        started = start + timedelta(seconds=2 * i)
        root_order = f"{started:%Y%m%dT%H%M%S%fZ}{root_id}"
        child_start = started + timedelta(milliseconds=100)
        common = {"trace_id": root_id, "session_id": session_id}
        runs.append(
            {
                **common,
                "id": root_id,
                "dotted_order": root_order,
                "name": "answer_question",
                "run_type": "chain",
                "start_time": started.isoformat(),
                "end_time": (started + timedelta(seconds=1)).isoformat(),
                "inputs": {"question": f"Question {i}: how do {topic} work?"},
                "outputs": {"answer": f"Answer {i}: {topic} are configured in Settings. " * 3},
                "extra": {"metadata": {"user_tier": "pro"}},
                "tags": ["bench"],
            }
        )
        runs.append(
            {
                **common,
                "id": child_id,
                "parent_run_id": root_id,
                "dotted_order": f"{root_order}.{child_start:%Y%m%dT%H%M%S%fZ}{child_id}",
                "name": "retrieve_docs",
                "run_type": "retriever",
                "start_time": child_start.isoformat(),
                "end_time": (child_start + timedelta(milliseconds=200)).isoformat(),
                "inputs": {"query": topic},
                "outputs": {
                    "documents": [
                        {
                            "page_content": f"Doc {n} on {topic} (trace {i}). " * 12,
                            "metadata": {"source": f"{topic.replace(' ', '-')}-{n}.md"},
                        }
                        for n in range(3)
                    ]
                },
            }
        )
    return runs


def serve_standin(runs_count: int, ready: Connection, stop: Event, shape: str = "chat") -> None:
    """The stand-in in its own process, as a real LangSmith would be: no shared GIL."""
    with LangSmithStandIn(api_key=API_KEY) as langsmith:
        session = langsmith.store.create_project(LANGSMITH_PROJECT)
        make = make_rag_traces if shape == "rag" else make_runs
        langsmith.store.add_runs(make(runs_count, session))
        ready.send(langsmith.url)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--memory", action="store_true", help="measure peak RSS instead")
    parser.add_argument("--sizes", default="2000,20000", help="trace counts for --memory")
    parser.add_argument("--label-studio", action="store_true", help="--memory: whole syncs too")
    parser.add_argument("--rss-child", choices=["idle", "source", "sync"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    if args.memory:
        memory([int(size) for size in args.sizes.split(",")], args.label_studio)
        return

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

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"runs={args.runs} batch={BATCH}; {os.cpu_count()} CPUs, load average {load}")
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


def memory(sizes: list[int], with_label_studio: bool) -> None:
    """Peak RSS of fresh processes reading `size` traces each, against an idle one."""
    if with_label_studio:
        with label_studio_and_redis() as (ls, redis, _):
            env = {
                "LABEL_STUDIO_URL": ls.url,
                "LABEL_STUDIO_API_KEY": ls.token,
                "REDIS_URL": redis.url,
            }
            results = [_measure_size(size, env, ("idle", "source", "sync")) for size in sizes]
    else:
        results = [_measure_size(size, {}, ("idle", "source")) for size in sizes]
    print(f"sizes={','.join(map(str, sizes))} (traces of 2 runs each)")
    growth: dict[str, list[float]] = {}
    for size, measured in zip(sizes, results, strict=True):
        idle = measured["idle"]["peak_rss_kib"]
        for mode in [m for m in measured if m != "idle"]:
            peak = measured[mode]["peak_rss_kib"]
            growth.setdefault(mode, []).append(peak - idle)
            print(
                f"{mode:6s} {size:>7,} traces: peak RSS {peak / 1024:7.1f} MiB, "
                f"{(peak - idle) / 1024:6.1f} MiB over idle ({idle / 1024:.1f} MiB); "
                f"{json.dumps({k: v for k, v in measured[mode].items() if k != 'peak_rss_kib'})}"
            )
    ratios = {mode: values[-1] / max(values[0], 1.0) for mode, values in growth.items()}
    print(" ".join(f"{mode}_growth_ratio={ratio:.2f}" for mode, ratio in ratios.items()))
    print(f"rss_growth_ratio={max(ratios.values()):.2f}")


def _measure_size(size: int, env: dict[str, str], modes: tuple[str, ...]) -> dict[str, Any]:
    """Serve `size` RAG traces from a stand-in process and run each mode in a fresh process."""
    receive, send = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()
    standin = multiprocessing.Process(target=serve_standin, args=(size, send, stop, "rag"))
    standin.start()
    try:
        child_env = {
            **os.environ,
            **env,
            "LANGSMITH_ENDPOINT": receive.recv(),
            "LANGSMITH_API_KEY": API_KEY,
            "BENCH_TRACES": str(size),
        }
        measured = {}
        for mode in modes:
            result = subprocess.run(
                [sys.executable, __file__, "--rss-child", mode],
                env=child_env,
                capture_output=True,
                text=True,
                check=True,
                timeout=1800,
            )
            measured[mode] = json.loads(result.stdout.strip().splitlines()[-1])
        return measured
    finally:
        stop.set()
        standin.join(timeout=30)


def rss_child(mode: str) -> None:
    """One measured process: connect, then read nothing (idle), read and convert, or sync."""
    settings = Settings()
    traces = int(os.environ["BENCH_TRACES"])
    source = LangSmithApiSource(make_client(settings), RunSelection(projects=[LANGSMITH_PROJECT]))
    outcome: dict[str, Any] = {}
    if mode == "source":
        conversations = docs = 0
        for item in source.fetch(None):
            assert not isinstance(item, Skip), item
            conversation = convert_run(item.run, item.feedback, item.project)
            assert not isinstance(conversation, Skip), conversation
            conversations += 1
            docs += len(conversation.context_docs)
        assert (conversations, docs) == (traces, 3 * traces), (conversations, docs)
        outcome = {"conversations": conversations, "context_docs": docs}
    elif mode == "sync":
        store = SyncStore(redis_client(settings.redis_url), settings.label_studio_url)
        title = f"bench memory {traces} {uuid.uuid4().hex[:6]}"
        report = run_sync(source, LabelStudioGateway(settings), title, state=store)
        assert report.imported == traces, report.as_dict()
        outcome = {"imported": report.imported}
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_kib": peak_kib, **outcome}))


if __name__ == "__main__":
    main()
