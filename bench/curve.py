"""Benchmark: how each stage grows. Sync, predict and export at 1,000 and 10,000 items (and
100,000 with `--full`), each against its floor measured in the same run, with peak memory.

    .venv/bin/python bench/curve.py [--full] [--stages predict,sync,export]

Every measurement runs in a fresh process, so its peak RSS (`ru_maxrss`) is that stage's
alone. `--stages predict-growth` compares predict's cost per task across sizes under the same
load (the probes of all sizes interleaved in one process; no floor, no RSS).

Floors: predict, raw PyTorch `model.encode` of the measured tasks' texts (paired batch
by batch); sync, a raw `label-studio-sdk` import of the same prepared tasks; export, the raw
paginated read of the same reviewed tasks. Predict fills a project with the first N-1,000
tasks (bench/workload.py) and measures the last 1,000 (tasks per second at N tasks in the
project), then checks the vector index's near-duplicates against an exact search over every
task vector. Label Studio and Redis are started once per stage; the LangSmith stand-in runs
in its own process.

One line per measurement, then the table; the last line reads
`predict_growth=<cost per task at the largest size / at 1,000> recall=<lowest recall>`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

PROBE = 1000
#: Recall is measured on the pairs at least this similar by cosine (the vector index's part of
#: near-duplicates: the nearest task and search; MinHash decides the flag).
RECALL_COSINE = 0.95
BATCH = 100
Result = dict[str, Any]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(items, size)):
        yield batch


# --- predict ----------------------------------------------------------------------------------
def predict_stage(size: int) -> Result:
    import numpy as np
    from predict import batch_texts, predictor
    from workload import tasks

    from tracetune.backend.vectors.duplicates import MAX_LISTED
    from tracetune.backend.vectors.embeddings import resolve_model
    from tracetune.backend.vectors.encoders import TorchEncoder
    from tracetune.sync.settings import Settings
    from tracetune.sync.stack.servers import free_port, start_redis

    with tempfile.TemporaryDirectory(prefix="tracetune-curve-") as tmp:
        redis = start_redis(free_port(), Path(tmp) / "redis", appendonly=False)
        try:
            settings = Settings(redis_url=redis.url)
            backend, _, predict = predictor(settings)
            reference = TorchEncoder(resolve_model(settings.tracetune_embedding_model))
            reference.encode(["warm the model up", "on a few other texts"] * 32, 64)
            probe = min(PROBE, size)
            started = time.perf_counter()
            for batch in chunks(tasks(0, size - probe), BATCH):
                predict(batch)
            fill_s = time.perf_counter() - started
            raw_s = measured_s = 0.0
            for batch in chunks(tasks(size - probe, probe), BATCH):
                texts = batch_texts(batch, set())
                t0 = time.perf_counter()
                reference.encode(texts, settings.tracetune_embedding_batch_size)
                t1 = time.perf_counter()
                predict(batch)
                raw_s += t1 - t0
                measured_s += time.perf_counter() - t1
            rss = peak_rss_mb()  # before the exact search below, which holds every vector

            index = backend.vector_indexes.get("project:1")
            ids = list(range(1, size + 1))
            stored = index.vectors_of(ids)
            assert len(stored) == size, f"{len(stored)} vectors indexed, {size} expected"
            matrix = np.stack([stored[t] for t in ids])
            probe_ids = ids[-probe:]
            queries = matrix[-probe:]
            threshold = RECALL_COSINE
            found = expected = nearest_same = 0
            hits = index.search(queries, MAX_LISTED + 2)
            for task_id, query, ann in zip(probe_ids, queries, hits, strict=True):
                scores = matrix @ query
                scores[task_id - 1] = -np.inf
                order = np.argsort(-scores)[: MAX_LISTED + 1]
                exact = {ids[i] for i in order if scores[i] >= threshold}
                approx = [t for t, _ in ann if t != task_id]
                expected += len(exact)
                found += len(exact & {t for t, s in ann if t != task_id and s >= threshold})
                nearest_same += bool(approx) and approx[0] == ids[int(order[0])]
        finally:
            redis.stop()
    return {
        "stage": "predict",
        "items": size,
        "seconds": measured_s,
        "floor_seconds": raw_s,
        "per_item_of": probe,
        "fill_seconds": fill_s,
        "peak_rss_mb": rss,
        "recall": found / expected if expected else 1.0,
        "duplicate_pairs": expected,
        "nearest_agreement": nearest_same / probe,
    }


def predict_growth_stage(sizes: list[int]) -> list[Result]:
    """Cost per task at each project size, the probe batches of all sizes interleaved.

    Timed one after another, two sizes can see very different load on a shared machine (and
    the PyTorch floor moves with load far more than the backend does). Here every size has its
    own project, filled first; then each probe batch is predicted into every project in turn,
    so all sizes are measured under the same load. Probe tasks are new to every project.
    """
    from predict import predictor
    from workload import tasks

    from tracetune.sync.settings import Settings
    from tracetune.sync.stack.servers import free_port, start_redis

    with tempfile.TemporaryDirectory(prefix="tracetune-curve-") as tmp:
        redis = start_redis(free_port(), Path(tmp) / "redis", appendonly=False)
        try:
            _, _, predict = predictor(Settings(redis_url=redis.url))
            for number, size in enumerate(sizes, start=1):
                for batch in chunks(tasks(0, size - PROBE), BATCH):
                    predict(batch, f"{number}.0")
            spent = dict.fromkeys(sizes, 0.0)
            probes = {size: chunks(tasks(10_000_000 * n, PROBE), BATCH)
                      for n, size in enumerate(sizes, start=1)}  # fmt: skip
            for _ in range(PROBE // BATCH):
                for number, size in enumerate(sizes, start=1):
                    batch = next(probes[size])
                    started = time.perf_counter()
                    predict(batch, f"{number}.0")
                    spent[size] += time.perf_counter() - started
        finally:
            redis.stop()
    return [{"stage": "predict-growth", "items": size, "seconds": spent[size]} for size in sizes]


# --- sync -------------------------------------------------------------------------------------
def raw_import_child(ls_url: str, token: str, size: int) -> Result:
    from label_studio_sdk import LabelStudio

    from sync import make_runs, raw_import

    client = LabelStudio(base_url=ls_url, api_key=token, timeout=900)
    elapsed = raw_import(client, make_runs(size, str(uuid.uuid4())))
    return {"seconds": elapsed, "peak_rss_mb": peak_rss_mb()}


def sync_child(ls_url: str, token: str, redis_url: str, langsmith_url: str, size: int) -> Result:
    from pydantic import SecretStr

    from sync import API_KEY, BATCH, LANGSMITH_PROJECT
    from tracetune.sync.ingest.state import SyncStore
    from tracetune.sync.ingest.syncer import run_sync
    from tracetune.sync.label_studio.gateway import LabelStudioGateway
    from tracetune.sync.langsmith.api_source import LangSmithApiSource, RunSelection
    from tracetune.sync.langsmith.client import make_client
    from tracetune.sync.redis_client import redis_client
    from tracetune.sync.settings import Settings

    settings = Settings(
        label_studio_url=ls_url,
        label_studio_api_key=SecretStr(token),
        redis_url=redis_url,
        langsmith_endpoint=langsmith_url,
        langsmith_api_key=SecretStr(API_KEY),
        import_batch_size=BATCH,
    )
    source = LangSmithApiSource(make_client(settings), RunSelection(projects=[LANGSMITH_PROJECT]))
    store = SyncStore(redis_client(redis_url), ls_url)
    started = time.perf_counter()
    report = run_sync(source, LabelStudioGateway(settings), f"curve sync {size}", state=store)
    elapsed = time.perf_counter() - started
    assert report.imported == size, report.as_dict()
    return {"seconds": elapsed, "peak_rss_mb": peak_rss_mb()}


def sync_stage(sizes: list[int]) -> Iterator[Result]:
    from _servers import label_studio_and_redis

    from sync import serve_standin

    with label_studio_and_redis() as (ls, redis, _):
        for size in sizes:
            receive, send = multiprocessing.Pipe(duplex=False)
            stop = multiprocessing.Event()
            standin = multiprocessing.Process(target=serve_standin, args=(size, send, stop))
            standin.start()
            langsmith_url = receive.recv()
            try:
                raw = in_child(raw_import_child, ls.url, ls.token, size)
                synced = in_child(sync_child, ls.url, ls.token, redis.url, langsmith_url, size)
            finally:
                stop.set()
                standin.join(timeout=60)
            yield {"stage": "sync", "items": size, "seconds": synced["seconds"],
                   "floor_seconds": raw["seconds"], "per_item_of": size,
                   "peak_rss_mb": synced["peak_rss_mb"],
                   "floor_peak_rss_mb": raw["peak_rss_mb"]}  # fmt: skip


# --- export -----------------------------------------------------------------------------------
def raw_read_child(ls_url: str, token: str, project_id: int) -> Result:
    from export import raw_read

    started = time.perf_counter()
    count = raw_read(ls_url, token, project_id)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(), "n": count}


def export_child(ls_url: str, token: str, project_id: int, out: str) -> Result:
    from pydantic import SecretStr

    from tracetune.sync.export.run import ExportRequest, run_export
    from tracetune.sync.settings import Settings

    settings = Settings(
        label_studio_url=ls_url,
        label_studio_api_key=SecretStr(token),
        tracetune_export_dir=Path(out),
    )
    request = ExportRequest(project=str(project_id), model="gpt-4o-mini-2024-07-18")
    started = time.perf_counter()
    result = run_export(settings, request)
    elapsed = time.perf_counter() - started
    assert result.valid, result.manifest["validation"]
    return {"seconds": elapsed, "peak_rss_mb": peak_rss_mb()}


def export_stage(sizes: list[int]) -> Iterator[Result]:
    from _servers import label_studio_and_redis
    from export import BATCH as IMPORT_BATCH
    from export import reviewed_task

    from tracetune.sync.label_config import render_label_config
    from tracetune.sync.review_kinds import ReviewKind

    with label_studio_and_redis() as (ls, _, client), tempfile.TemporaryDirectory() as out:
        for size in sizes:
            project = client.projects.create(
                title=f"curve export {size}", label_config=render_label_config(ReviewKind.CHAT)
            )
            project_id = int(project.id or 0)
            for start in range(0, size, IMPORT_BATCH):
                batch = [reviewed_task(i) for i in range(start, min(start + IMPORT_BATCH, size))]
                client.projects.import_tasks(id=project_id, request=batch)  # type: ignore[arg-type]
            raw = in_child(raw_read_child, ls.url, ls.token, project_id)
            assert raw["n"] == size
            exported = in_child(export_child, ls.url, ls.token, project_id, out)
            yield {"stage": "export", "items": size, "seconds": exported["seconds"],
                   "floor_seconds": raw["seconds"], "per_item_of": size,
                   "peak_rss_mb": exported["peak_rss_mb"],
                   "floor_peak_rss_mb": raw["peak_rss_mb"]}  # fmt: skip


def growth_rows(sizes: list[int]) -> Result:
    """`predict_growth_stage` with its rows in one result, for `in_child`."""
    return {"rows": predict_growth_stage(sizes)}


# --- running ----------------------------------------------------------------------------------
def _child_main(work: Callable[..., Result], send: Any, args: tuple[Any, ...]) -> None:
    send.send(work(*args))


def in_child(work: Callable[..., Result], *args: Any) -> Result:
    """`work(*args)` in a fresh process (its own peak memory); its result."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(work, send, args))
    child.start()
    send.close()
    try:
        result: Result = receive.recv()
    except EOFError:
        child.join()
        raise SystemExit(f"{work.__name__} failed (exit code {child.exitcode})") from None
    child.join()
    return result


def report(row: Result) -> None:
    per_item_ms = 1000 * row["seconds"] / row["per_item_of"]
    floor_ms = 1000 * row["floor_seconds"] / row["per_item_of"]
    extra = ""
    if row["stage"] == "predict":
        extra = (f"  recall {row['recall']:.4f} of {row['duplicate_pairs']} pairs, nearest "
                 f"{row['nearest_agreement']:.3f}, fill {row['fill_seconds']:.0f} s")  # fmt: skip
    print(f"{row['stage']:8} {row['items']:>7}  {per_item_ms:8.2f} ms/item  floor "
          f"{floor_ms:8.2f} ms/item  ratio {row['seconds'] / row['floor_seconds']:.2f}  "
          f"peak RSS {row['peak_rss_mb']:7.0f} MB  load {os.getloadavg()[0]:.1f}{extra}",
          flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="also 100,000 items (long)")
    parser.add_argument("--sizes", help="comma-separated sizes instead of 1000,10000[,100000]")
    parser.add_argument(
        "--stages", default="predict,sync,export", help="also: predict-growth (interleaved)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [1000, 10_000]
    if args.full and not args.sizes:
        sizes.append(100_000)
    started = time.perf_counter()
    rows: list[Result] = []
    for stage in args.stages.split(","):
        if stage == "predict":
            produced: Iterator[Result] = (in_child(predict_stage, size) for size in sizes)
        elif stage == "predict-growth":
            growth = in_child(growth_rows, sizes)["rows"]
            smallest = growth[0]["seconds"]
            for row in growth:
                per_task = 1000 * row["seconds"] / PROBE
                print(f"predict-growth {row['items']:>7}  {per_task:8.2f} ms/task at that size, "
                      f"{row['seconds'] / smallest:.2f}x the smallest")  # fmt: skip
            print(f"predict_growth_interleaved={growth[-1]['seconds'] / smallest:.2f}")
            continue
        elif stage == "sync":
            produced = sync_stage(sizes)
        elif stage == "export":
            produced = export_stage(sizes)
        else:
            raise SystemExit(f"unknown stage {stage!r}")
        for row in produced:
            report(row)
            rows.append(row)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{os.cpu_count()} CPUs, load average {load}; {time.perf_counter() - started:.0f} s")
    print("| stage | items | ms / item | floor ms / item | ratio | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        n = row["per_item_of"]
        print(f"| {row['stage']} | {row['items']:,} | {1000 * row['seconds'] / n:.2f} | "
              f"{1000 * row['floor_seconds'] / n:.2f} | {row['seconds'] / row['floor_seconds']:.2f}"
              f" | {row['peak_rss_mb']:.0f} |")  # fmt: skip
    predicted = [r for r in rows if r["stage"] == "predict"]
    if predicted:
        cost = {r["items"]: r["seconds"] / r["per_item_of"] for r in predicted}
        growth = cost[max(cost)] / cost[min(cost)]
        recall = min(r["recall"] for r in predicted)
        print(f"predict_growth={growth:.2f} recall={recall:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
