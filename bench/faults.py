"""Fault run (issue 10): syncs killed and racing, a backend fed malformed requests; loopback only.

    .venv/bin/python bench/faults.py [--runs 20000] [--race-runs 6000] [--clients 10]
                                     [--predictions 200] [--log-dir DIR]

Label Studio (SQLite) and Redis start fresh for the run, on 127.0.0.1, and stop at the end,
whatever happens; every sync is the real CLI in its own process, as a user runs it.

1. kill -9: a sync of `--runs` runs is killed with SIGKILL three times mid-import (once 10 %,
   30 % and 50 % of the runs are in Label Studio), each time followed at once by a new one;
   the fourth runs to the end. Every re-run must start at once (the dead holder's lock is
   replaced, no "another sync is running") and the project must hold each run exactly once.
2. races: two syncs of one `--race-runs` file into one new project started together, first
   with Redis unreachable (no lock at all), then with Redis (the second is refused with exit 7
   naming the holder) and then with `--break-lock` (both run). Each project must hold each run
   exactly once, and there must be one project per title.
3. backend: a fresh gunicorn backend (2 workers x 4 threads, basic auth, as `tracetune up`
   starts it) gets `--predictions` well-formed `/predict` requests from `--clients` threads,
   each client sending a malformed request (not JSON, nested 5,000 deep, wrong types, no
   tasks...) before every well-formed one. Well-formed requests must all succeed, malformed
   ones must all get a 4xx, and `/health` must say UP on every worker afterwards.

The last line reads `exactly_once=<bool> duplicates=<n> refused_reruns=<n> predict_errors=<n>
malformed_5xx=<n> p95_ms=<n>`; the exit code is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from label_studio_sdk import LabelStudio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from _servers import label_studio_and_redis  # noqa: E402
from sync_helpers import qa_run  # noqa: E402

from tracetune.sync.conversation import Conversation, Message  # noqa: E402
from tracetune.sync.label_config import render_label_config  # noqa: E402
from tracetune.sync.review_kinds import ReviewKind  # noqa: E402
from tracetune.sync.stack.servers import free_port, wait_until  # noqa: E402
from tracetune.sync.task_data import conversation_task  # noqa: E402

#: Tasks per import request: the killed sync's; the races use smaller batches, so that the
#: two syncs interleave for longer.
BATCH = 500
RACE_BATCH = 200
KILL_SHARES = (0.1, 0.3, 0.5)
MALFORMED: list[tuple[str, bytes]] = [
    ("not JSON", b"{oops"),
    ("nested 5,000 deep", b'{"tasks": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("a JSON list", b"[1, 2, 3]"),
    ("no tasks", b'{"project": "1.1"}'),
    ("tasks not a list", b'{"tasks": 7, "project": "1.1"}'),
    ("task without id", b'{"tasks": [{"data": {}}], "project": "1.1"}'),
    ("text not a string", b'{"tasks": [{"id": 1, "data": {"prompt": 1, "answer": 2}}]}'),
    ("bad project", b'{"tasks": [], "project": "x"}'),
]


@dataclass
class Findings:
    failures: list[str] = field(default_factory=list)
    projects_exactly_once: bool = True
    duplicates: int = 0
    refused_reruns: int = 0
    predict_errors: int = 0
    malformed_5xx: int = 0
    p95_ms: float = 0.0

    def check(self, ok: bool, message: str) -> None:
        print(("ok    " if ok else "FAIL  ") + message, flush=True)
        if not ok:
            self.failures.append(message)


def write_runs(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            handle.write(json.dumps(qa_run(index)) + "\n")
    return path


class Syncs:
    """`tracetune sync` processes against this run's servers, and what Label Studio holds."""

    def __init__(self, client: LabelStudio, env: dict[str, str], work: Path) -> None:
        self.client, self.env, self.work = client, env, work

    def start(
        self,
        title: str,
        path: Path,
        *extra: str,
        redis_url: str | None = None,
        batch: int = BATCH,
    ) -> Any:
        env = {**self.env, **({"REDIS_URL": redis_url} if redis_url else {})}
        args = ["sync", "-p", title, "--file", str(path), "--batch-size", str(batch), "--json"]
        return subprocess.Popen(
            [sys.executable, "-m", "tracetune.sync.cli", *args, *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    @staticmethod
    def finish(process: Any) -> tuple[int, dict[str, Any], str]:
        out, err = process.communicate(timeout=1800)
        report = json.loads(out.splitlines()[-1]) if out.strip() else {}
        return process.returncode, report, err

    def projects(self, title: str) -> list[Any]:
        listing: Any = self.client.projects.list(title=title)
        return [p for p in listing if p.title == title]

    def task_count(self, title: str) -> int:
        found = self.projects(title)
        return int(found[0].task_number or 0) if found else 0

    def run_ids(self, title: str) -> tuple[int, Counter[str]]:
        found = self.projects(title)
        ids: Counter[str] = Counter()
        for project in found:
            tasks: Any = self.client.tasks.list(
                project=project.id, page_size=1000, fields="task_only", include="id,data"
            )
            ids.update(str(t.data["run_id"]) for t in tasks)
        return len(found), ids


def exactly_once(syncs: Syncs, title: str, count: int, findings: Findings) -> None:
    projects, ids = syncs.run_ids(title)
    doubled = sum(n - 1 for n in ids.values() if n > 1)
    findings.duplicates += doubled
    ok = projects == 1 and len(ids) == count and doubled == 0
    findings.projects_exactly_once &= ok
    findings.check(
        ok,
        f"{title!r}: {projects} project(s), {sum(ids.values())} tasks, {len(ids)} distinct runs "
        f"of {count}, {doubled} duplicated",
    )


def kill_run(syncs: Syncs, runs: int, findings: Findings) -> None:
    title = "faults: kill -9 mid-import"
    path = write_runs(syncs.work / "kill.jsonl", runs)
    started = time.perf_counter()
    for share in KILL_SHARES:
        victim = syncs.start(title, path)
        target = int(runs * share)
        while syncs.task_count(title) < target and victim.poll() is None:
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
        _, err = victim.communicate()
        refused = "another sync" in err
        findings.refused_reruns += refused
        findings.check(
            not refused and victim.returncode == -signal.SIGKILL,
            f"sync killed with {syncs.task_count(title)} of {runs} runs imported (target "
            f"{target}); it had started at once: {not refused}",
        )
    code, report, err = syncs.finish(syncs.start(title, path))
    findings.refused_reruns += "another sync" in err
    removed = "whose process is gone" in err
    findings.check(
        code == 0 and removed,
        f"final sync exit {code} in {time.perf_counter() - started:.1f} s for the whole run: "
        f"imported {report.get('imported')}, already present {report.get('already_present')}, "
        f"dead holder's lock replaced: {removed}",
    )
    exactly_once(syncs, title, runs, findings)


def race(syncs: Syncs, runs: int, redis_url: str, findings: Findings) -> None:
    path = write_runs(syncs.work / "race.jsonl", runs)
    no_redis = f"redis://127.0.0.1:{free_port()}/0"

    title = "faults: two syncs without Redis"
    pair = [syncs.start(title, path, redis_url=no_redis, batch=RACE_BATCH) for _ in range(2)]
    results = [syncs.finish(p) for p in pair]
    summary = ", ".join(
        f"exit {c}: imported {r.get('imported')}, present {r.get('already_present')}, "
        f"duplicates removed {r.get('duplicates_removed')}"
        for c, r, _ in results
    )
    findings.check(all(c == 0 for c, _, _ in results), f"without Redis: {summary}")
    exactly_once(syncs, title, runs, findings)

    title = "faults: two syncs with Redis"
    holder = syncs.start(title, path, redis_url=redis_url, batch=RACE_BATCH)
    while syncs.task_count(title) == 0 and holder.poll() is None:
        time.sleep(0.05)
    second = syncs.start(title, path, redis_url=redis_url, batch=RACE_BATCH)
    code, _, err = syncs.finish(second)
    message = err.strip().splitlines()[-1] if err.strip() else ""
    findings.check(
        code == 7 and f"(pid {holder.pid})" in message and holder.poll() is None,
        f"with Redis, the second sync while the first runs: exit {code}: {message}",
    )
    breaker = syncs.start(title, path, "--break-lock", redis_url=redis_url, batch=RACE_BATCH)
    results = [syncs.finish(holder), syncs.finish(breaker)]
    summary = ", ".join(
        f"exit {c}: imported {r.get('imported')}, present {r.get('already_present')}, "
        f"duplicates removed {r.get('duplicates_removed')}"
        for c, r, _ in results
    )
    findings.check(
        all(c == 0 for c, _, _ in results),
        f"a third with --break-lock while the first runs: {summary}",
    )
    exactly_once(syncs, title, runs, findings)


@contextmanager
def backend(work: Path, redis_url: str) -> Iterator[tuple[str, tuple[str, str]]]:
    """`tracetune backend` under gunicorn as the local stack runs it, until the block ends."""
    port = free_port()
    auth = ("labelstudio", secrets.token_urlsafe(12))
    env = {
        **os.environ,
        "REDIS_URL": redis_url.rsplit("/", 1)[0] + "/3",
        "BASIC_AUTH_USER": auth[0],
        "BASIC_AUTH_PASS": auth[1],
        "TRACETUNE_BACKEND_URL": f"http://127.0.0.1:{port}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    with (work / "backend.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tracetune.sync.cli", "backend"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(f"{url}/health", 180, process, auth=auth)
        yield url, auth
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def task(number: int) -> dict[str, Any]:
    """A task the backend has never seen, laid out as the sync writes it."""
    run = qa_run(1_000_000 + number)
    messages = [
        Message(role="user", content=f"{run['inputs']['question']} (ticket {number})"),
        Message(role="assistant", content=f"{run['outputs']['answer']} Reference {number}."),
    ]
    conversation = Conversation(run_id=run["id"], messages=messages, source_shape="faults")
    return {"id": number, "data": conversation_task(conversation, ReviewKind.CHAT)}


def predict_under_malformed_load(
    work: Path, redis_url: str, clients: int, predictions: int, findings: Findings
) -> None:
    config = render_label_config(ReviewKind.CHAT)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    malformed_codes: Counter[int] = Counter()
    lock = threading.Lock()
    numbers = iter(range(predictions))

    def client(seed: int, url: str, auth: tuple[str, str]) -> None:
        with httpx.Client(base_url=url, auth=auth, timeout=120) as http:
            for i, number in enumerate(numbers):
                name, raw = MALFORMED[(seed + i) % len(MALFORMED)]
                bad = http.post(
                    "/predict", content=raw, headers={"Content-Type": "application/json"}
                )
                body = {"tasks": [task(number)], "project": "1.1", "label_config": config}
                started = time.perf_counter()
                try:
                    good = http.post("/predict", json=body)
                    ok = good.status_code == 200 and len(good.json()["results"]) == 1
                    outcome = "ok" if ok else f"HTTP {good.status_code}: {good.text[:100]}"
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                    statuses[f"malformed ({name}) -> {bad.status_code}"] += 1
                    malformed_codes[bad.status_code] += 1
                    statuses[f"well-formed -> {outcome}"] += 1

    with backend(work, redis_url) as (url, auth):
        warm = httpx.post(
            f"{url}/predict",
            json={"tasks": [task(-1)], "project": "1.1", "label_config": config},
            auth=auth,
            timeout=300,
        )  # a clean start: the first request waits for the model
        findings.check(warm.status_code == 200, f"backend up, first prediction {warm.status_code}")
        threads = [threading.Thread(target=client, args=(n, url, auth)) for n in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        health = Counter(
            httpx.get(f"{url}/health", auth=auth, timeout=10).json()["status"] for _ in range(20)
        )

    good = statuses.get("well-formed -> ok", 0)
    findings.predict_errors = predictions - good
    findings.malformed_5xx = sum(n for code, n in malformed_codes.items() if code >= 500)
    latencies.sort()
    findings.p95_ms = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
    p50 = latencies[len(latencies) // 2] if latencies else 0.0
    for name, count in sorted(statuses.items()):
        print(f"      {count:4d} x {name}")
    findings.check(
        findings.predict_errors == 0
        and findings.malformed_5xx == 0
        and set(malformed_codes) <= set(range(400, 500)),
        f"{predictions} well-formed predictions from {clients} clients, "
        f"{sum(malformed_codes.values())} malformed between them, in {elapsed:.1f} s: {good} "
        f"ok, p50 {p50:.0f} ms, p95 {findings.p95_ms:.0f} ms; malformed answered "
        f"{dict(sorted(malformed_codes.items()))}",
    )
    findings.check(health == {"UP": 20}, f"/health afterwards, 20 calls: {dict(health)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000, help="runs of the kill -9 sync")
    parser.add_argument("--race-runs", type=int, default=6_000, help="runs of each race")
    parser.add_argument("--clients", type=int, default=10, help="concurrent /predict clients")
    parser.add_argument("--predictions", type=int, default=200, help="well-formed predictions")
    parser.add_argument("--log-dir", type=Path, help="keep the servers' logs here")
    args = parser.parse_args()

    findings = Findings()
    began = time.perf_counter()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tracetune-faults-") as tmp:
        work = args.log_dir.resolve() if args.log_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with label_studio_and_redis() as (ls, redis_server, client):
            env = {
                **os.environ,
                "LABEL_STUDIO_URL": ls.url,
                "LABEL_STUDIO_API_KEY": ls.token,
                "REDIS_URL": redis_server.url,
                "TRACETUNE_STATE_DIR": str(work / "state"),
            }
            syncs = Syncs(client, env, work)
            kill_run(syncs, args.runs, findings)
            race(syncs, args.race_runs, redis_server.url, findings)
            predict_under_malformed_load(
                work, redis_server.url, args.clients, args.predictions, findings
            )
    print(
        f"done in {time.perf_counter() - began:.0f} s (servers' start included), "
        f"load average at the end {os.getloadavg()[0]:.1f}"
    )
    for failure in findings.failures:
        print(f"FAILED {failure}")
    print(
        f"exactly_once={findings.projects_exactly_once} "
        f"duplicates={findings.duplicates} refused_reruns={findings.refused_reruns} "
        f"predict_errors={findings.predict_errors} malformed_5xx={findings.malformed_5xx} "
        f"p95_ms={findings.p95_ms:.0f}"
    )
    return 1 if findings.failures else 0


if __name__ == "__main__":
    sys.exit(main())
