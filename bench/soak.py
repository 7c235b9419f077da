"""Soak: 20 concurrent clients calling the ML backend's `/predict` for 5 minutes while syncs and
exports run against the same Label Studio project, on loopback only.

    .venv/bin/python bench/soak.py [--duration 300] [--clients 20] [--runs 1000]

Everything listens on 127.0.0.1 only, starts fresh for the run and is stopped at the end,
whatever happens: Label Studio (SQLite) and Redis as `bench/_servers.py` starts them, the ML
backend under gunicorn and one RQ worker, both as the same `python -m tracetune.sync.cli
backend|worker` subprocesses `tracetune up` starts. Before the clock starts, `--runs` generated
LangSmith runs are synced with the real CLI and every task is reviewed through the SDK (70 %
accepted, 20 % edited, 10 % rejected); on 2 cores that takes about 5 minutes for 1,000 tasks,
Label Studio's annotation endpoint being the slow part. `--log-dir` keeps the servers' logs and
the exports.

During the soak the clients POST what Label Studio sends to `/predict` (the project's tasks as
`GET /api/tasks` lists them, `project` as `<id>.<created timestamp>`, the label config; one task
per request as when a reviewer opens a task, sometimes ten as the "Retrieve predictions" action
sends), with `--fresh` of the tasks new texts the backend has never seen, so that the model
keeps encoding instead of only answering from its cache. Meanwhile a pipeline runs rounds until
the time is up: append `--sync-runs` new runs to the exported file, queue an export on the
worker, sync the file (it must import exactly the new runs) and sync it again (it must import
nothing), then check the export that ran alongside.

Checks: `lost` counts runs the sync did not bring into Label Studio plus, per export, reviewed
tasks (accepted or edited) whose run id is missing from the SFT lineage or (edited) from the
preference lineage; a failed export loses them all. `doubled` counts run ids present more than
once in Label Studio plus run ids exported more than once in one file set, or exported although
they should not be. `requests` counts every `/predict` call the clients completed; `errors`
those that were not a 2xx with one result per task, including timeouts (Label Studio's own
limit, 100 s) and connection failures; latencies are client-side, over all of them.

The last line reads `requests=<n> errors=<n> p95_ms=<n> lost=<n> doubled=<n>`; the exit code is
1 when errors, lost, doubled or any count mismatch is not zero.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from label_studio_sdk import LabelStudio
from pydantic import SecretStr
from rq.job import Job, JobStatus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sync_helpers import qa_run  # noqa: E402

from tracetune.sync.langsmith.from_langsmith import Skip, convert_run  # noqa: E402
from tracetune.sync.review_kinds import ReviewKind, Verdict, chat_review_result  # noqa: E402
from tracetune.sync.settings import Settings  # noqa: E402
from tracetune.sync.stack.servers import free_port, start_label_studio, start_redis  # noqa: E402
from tracetune.sync.task_data import conversation_task  # noqa: E402
from tracetune.sync.worker.jobs import enqueue_export  # noqa: E402

TITLE = "soak: docs assistant"
QUEUE = "tracetune-soak"
#: Label Studio gives up on a prediction after this long (`ML_TIMEOUT_PREDICT`).
PREDICT_TIMEOUT_S = 100.0
#: Share of requests carrying ten tasks (the "Retrieve predictions" action) instead of one.
BATCH_SHARE = 0.1
BATCH_TASKS = 10
#: Ids of never-seen tasks start here, far above what the project holds.
FRESH_ID_BASE = 10_000_000
EXPORT_WAIT_S = 1800.0

TOPICS = ["invoices", "API keys", "webhooks", "single sign-on", "CSV exports", "rate limits",
          "search filters", "team seats", "audit logs", "data retention"]  # fmt: skip
ASKS = [
    "How do I configure {topic} for workspace {i}?",
    "Why did {topic} stop working in workspace {i} after yesterday's update?",
    "What is the difference between the old and the new {topic} settings (ticket {i})?",
    "Are {topic} limited on the Pro plan? Asking for account {i}.",
    "Write a short guide on {topic} for the new teammates of team {i}.",
]
ANSWERS = [
    "Open Settings, choose {topic}, and enable the option for workspace {i}. Changes apply "
    "within a minute; if they do not, sign out and back in.",
    "After the update, {topic} moved under Settings > Advanced. Workspace {i} kept its "
    "configuration, but the toggle is off by default: turn it on and save.",
    "The new {topic} settings are per project instead of per workspace (ticket {i}); the old "
    "global switch is the default for projects that never changed it.",
    "Yes: Pro includes {topic} up to 10,000 operations a month for account {i}; Enterprise "
    "removes the limit. Usage is on the Billing page.",
]
EXTRAS = ["", "", "", " My email is sam.{i}@example.com if you need it.",
          " Here is my config:\n```yaml\nretries: 3\ntimeout: 30\n```"]  # fmt: skip


# --- generated runs and reviews -----------------------------------------------------------


def make_run(index: int) -> dict[str, Any]:
    """One root `@traceable` run with a unique prompt, so no two tasks share an exact prompt
    (an identical prompt would let a rejected answer become a preference pair and blur the
    expected counts)."""
    rng = random.Random(index)
    topic = rng.choice(TOPICS)
    question = rng.choice(ASKS).format(topic=topic, i=index) + rng.choice(EXTRAS).format(i=index)
    answer = rng.choice(ANSWERS).format(topic=topic, i=index)
    return qa_run(index, question=question, answer=answer)


def append_runs(path: Path, start: int, stop: int) -> None:
    """Runs go to the end of one growing file, as a nightly export from LangSmith would."""
    with path.open("a", encoding="utf-8") as handle:
        for index in range(start, stop):
            handle.write(json.dumps(make_run(index)) + "\n")


def run_id_of(index: int) -> str:
    return str(make_run(index)["id"])


def review_result(index: int) -> tuple[str, list[dict[str, Any]]]:
    """The decision for the task of run `index` (70 % accept, 20 % edit, 10 % reject) and the
    annotation result a reviewer's click produces in the generated chat config."""
    bucket = index % 10
    verdict = Verdict.ACCEPT if bucket < 7 else Verdict.EDIT if bucket < 9 else Verdict.REJECT
    corrected = f"Go to Admin, then Settings, and follow step {index}."
    result = chat_review_result(verdict, corrected if verdict is Verdict.EDIT else None)
    decision = {"accept": "accepted", "edit": "edited", "reject": "rejected"}[verdict.value]
    return decision, result


def review_all(client: LabelStudio, tasks: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Review every task through the SDK, a few requests at a time (SQLite serialises writes,
    so more threads only queue). Returns run id → decision."""
    index_of = {run_id_of(i): i for i in range(len(tasks))}

    def review(task: dict[str, Any]) -> tuple[str, str]:
        run_id = str(task["data"]["run_id"])
        decision, result = review_result(index_of[run_id])
        client.annotations.create(id=int(task["id"]), result=result)
        return run_id, decision

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="review") as pool:
        return dict(pool.map(review, tasks))


def fresh_task(number: int) -> dict[str, Any]:
    """A task the backend has never seen, laid out exactly as the sync writes task data."""
    conversation = convert_run(make_run(FRESH_ID_BASE + number))
    assert not isinstance(conversation, Skip)
    data = conversation_task(conversation, ReviewKind.CHAT)
    return {"id": FRESH_ID_BASE + number, "data": data, "annotations": [], "predictions": []}


# --- processes -------------------------------------------------------------------------------


def start_process(
    name: str, args: list[str], env: dict[str, str], work: Path
) -> subprocess.Popen[bytes]:
    """A `tracetune` subprocess in its own session (so its whole group can be killed), logging
    to `<work>/<name>.log`, run from `work` so no stray `.env` of the checkout is read."""
    with (work / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tracetune.sync.cli", *args],
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (gunicorn's workers, RQ's work-horse), SIGKILL after 20 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def servers(work: Path) -> Iterator[tuple[str, str, str]]:
    """Fresh Label Studio (SQLite) and Redis, as `bench/_servers.py` starts them but logging
    into `work`, where the findings below read Label Studio's 5xx answers and lock errors.
    Yields Label Studio's URL, its API token and Redis's URL."""
    ls = start_label_studio(
        data_dir=work / "label-studio",
        port=free_port(),
        username="soak@tracetune.test",
        password=secrets.token_hex(12),
        token=secrets.token_hex(20),
        log_path=work / "label-studio.log",
    )
    try:
        redis = start_redis(free_port(), work / "redis")
        try:
            yield ls.url, ls.token, redis.url
        finally:
            redis.stop()
    finally:
        ls.stop()


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Everything started in the block is stopped when it ends, whatever happens."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            stop_process(process)


def wait_backend(url: str, process: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    """Until `/health` says the model is loaded several times in a row (gunicorn spreads the
    checks over its workers, each loading its own copy)."""
    deadline = time.monotonic() + timeout_s
    ready_in_a_row = 0
    while ready_in_a_row < 8:
        if process.poll() is not None:
            raise RuntimeError(f"the backend exited with {process.returncode}; see backend.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the backend's model was not ready after {timeout_s:.0f} s")
        try:
            body = httpx.get(f"{url}/health", timeout=2).json()
            ready_in_a_row = ready_in_a_row + 1 if body.get("model_ready") else 0
        except (httpx.HTTPError, ValueError):
            ready_in_a_row = 0
        time.sleep(0.25)


def cli_sync(env: dict[str, str], work: Path, runs_file: Path) -> dict[str, Any]:
    """`tracetune sync --file ... --json` as a user runs it; returns its report."""
    completed = subprocess.run(
        [sys.executable, "-m", "tracetune.sync.cli", "sync", "--file", str(runs_file),
         "--project", TITLE, "--json"],
        env=env, cwd=work, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise RuntimeError(f"sync exited with {completed.returncode}: {completed.stderr[-2000:]}")
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


# --- Label Studio reads ----------------------------------------------------------------------


def list_tasks(url: str, token: str, project_id: int) -> list[dict[str, Any]]:
    """Every task of the project as `GET /api/tasks` lists it without annotations: what the
    clients send to `/predict`, and the run ids the duplicate check counts."""
    tasks: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=300, headers={"Authorization": f"Token {token}"}) as c:
        page = 1
        while True:
            params: dict[str, str | int] = {
                "project": project_id,
                "fields": "task_only",
                "page_size": 1000,
                "page": page,
            }
            response = c.get("/api/tasks", params=params)
            if response.status_code == 404:  # past the last page
                return tasks
            response.raise_for_status()
            body = response.json()
            tasks.extend(body["tasks"])
            if not body["tasks"] or len(tasks) >= int(body["total"]):
                return tasks
            page += 1


# --- the load --------------------------------------------------------------------------------


@dataclass
class LoadStats:
    """Latencies and failures of every `/predict` call, shared by the client threads."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    tasks_predicted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, latency_ms: float, tasks: int, error: str | None) -> None:
        with self.lock:
            self.latencies_ms.append(latency_ms)
            if error is None:
                self.tasks_predicted += tasks
            else:
                self.errors[error] += 1

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile; 0 when nothing was measured."""
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class PredictTarget:
    """What the clients send: the project's tasks (replaced whole after each sync, so readers
    never see a half-built list) and the request envelope Label Studio uses."""

    url: str
    project_uid: str
    label_config: str
    tasks: list[dict[str, Any]]
    fresh_share: float
    fresh_counter: Iterator[int]
    fresh_lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, rng: random.Random) -> dict[str, Any]:
        size = BATCH_TASKS if rng.random() < BATCH_SHARE else 1
        pool = self.tasks
        picked = []
        for _ in range(size):
            if rng.random() < self.fresh_share:
                with self.fresh_lock:
                    number = next(self.fresh_counter)
                picked.append(fresh_task(number))
            else:
                picked.append(rng.choice(pool))
        return {
            "tasks": picked,
            "project": self.project_uid,
            "label_config": self.label_config,
            "params": {"login": None, "password": None, "context": None},
        }


def client_loop(target: PredictTarget, stats: LoadStats, stop: threading.Event, seed: int) -> None:
    """One client: a request, its answer (or its failure), the next one; no think time."""
    rng = random.Random(seed)
    with httpx.Client(base_url=target.url, timeout=PREDICT_TIMEOUT_S) as client:
        while not stop.is_set():
            body = target.body(rng)
            started = time.perf_counter()
            error: str | None = None
            try:
                response = client.post("/predict", json=body)
                if response.status_code // 100 != 2:
                    error = f"HTTP {response.status_code}: {response.text[:120]}"
                elif len(response.json().get("results") or []) != len(body["tasks"]):
                    error = "wrong number of results"
            except httpx.TimeoutException:
                error = f"timeout after {PREDICT_TIMEOUT_S:.0f} s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:160]
            except ValueError:
                error = "response is not JSON"
            latency_ms = (time.perf_counter() - started) * 1000
            stats.record(latency_ms, len(body["tasks"]), error)


# --- syncs and exports under load ------------------------------------------------------------


@dataclass
class ExportCheck:
    """One export measured against the reviews; its own duration comes from the job's
    timestamps, so waiting for the syncs beside it does not count."""

    export_id: str
    queued_s: float = 0.0
    run_s: float = 0.0
    tasks: int = 0
    examples: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    doubled: int = 0
    mismatches: list[str] = field(default_factory=list)
    valid: bool = False


@dataclass
class RoundResult:
    """One round's sync reports and timings, kept for the report at the end."""

    number: int
    sync: dict[str, Any]
    sync_s: float
    rerun: dict[str, Any]
    rerun_s: float
    export: ExportCheck


def wait_export(job: Job, timeout_s: float = EXPORT_WAIT_S) -> tuple[str, dict[str, Any] | str]:
    """Poll the job until it finished or failed for good (a transient failure is retried by RQ
    and shows as scheduled). Returns the status and the export record or the failure reason."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = job.get_status(refresh=True)
        if status == JobStatus.FINISHED:
            job.refresh()  # its timestamps, for the export's own duration
            return "finished", dict(job.return_value() or {})
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            job.refresh()
            return str(status), str(job.meta.get("reason", "no reason recorded"))
        time.sleep(0.5)
    return "timeout", f"not finished after {timeout_s:.0f} s"


def check_export(
    manifest: dict[str, Any],
    reviewed: dict[str, str],
    task_bounds: tuple[int, int],
    task_runs: dict[int, str],
    check: ExportCheck,
) -> None:
    """The export against what reviewers decided: counts by decision, then every expected run
    id exactly once in the SFT files (accepted, edited) and the preference files (edited)."""
    counts = manifest["counts"]
    check.tasks = int(counts["tasks"])
    check.examples = dict(manifest["examples"])
    check.valid = all(report["ok"] for report in manifest["validation"].values())
    decided = Counter(reviewed.values())
    low, high = task_bounds
    if not low <= check.tasks <= high:
        check.mismatches.append(f"tasks {check.tasks} not within [{low}, {high}]")
    by_decision = counts["by_decision"]
    for decision in ("accepted", "edited", "rejected"):
        if by_decision.get(decision, 0) != decided[decision]:
            check.mismatches.append(
                f"{decision}: {by_decision.get(decision, 0)} exported, {decided[decision]} made"
            )
    unreviewed = check.tasks - len(reviewed)
    if by_decision.get("unreviewed", 0) != unreviewed:
        check.mismatches.append(f"unreviewed: {by_decision.get('unreviewed', 0)} != {unreviewed}")

    expected = {
        "sft": {run for run, decision in reviewed.items() if decision in ("accepted", "edited")},
        "preference": {run for run, decision in reviewed.items() if decision == "edited"},
    }
    for family, wanted in expected.items():
        seen: Counter[str] = Counter()
        for row in manifest["lineage"]:
            if not row["set"].startswith(f"{family}."):
                continue
            for run_id in row["run_ids"]:
                seen[run_id] += 1
                if task_runs.get(int(row["task_id"])) != run_id:
                    check.mismatches.append(f"{family}: task {row['task_id']} is not run {run_id}")
        check.lost += len(wanted - set(seen))
        check.doubled += sum(n - 1 for n in seen.values() if n > 1)
        check.doubled += sum(1 for run_id in seen if run_id not in wanted)
        if sum(check.examples.get(f"{family}.{s}", 0) for s in ("train", "validation")) != len(
            wanted
        ):
            check.mismatches.append(f"{family}: {check.examples} for {len(wanted)} expected")


def pipeline(
    ctx: SoakContext,
    target: PredictTarget,
    deadline: float,
    rounds: list[RoundResult],
    failures: list[str],
) -> None:
    """Rounds of sync + re-sync + export under load: at least one, then another while a round as
    long as the last still fits before the deadline (the clients wait for a round that runs
    over, so no round runs without load, and the soak stays close to its duration)."""
    try:
        number, last_s = 0, 0.0
        while number == 0 or time.monotonic() + last_s <= deadline:
            started = time.monotonic()
            rounds.append(one_round(ctx, target, number))
            last_s = time.monotonic() - started
            number += 1
    except Exception as exc:  # reported, and the run fails; the clients stop at the deadline
        failures.append(f"pipeline: {type(exc).__name__}: {exc}")


@dataclass
class SoakContext:
    """What every round needs, passed whole so the pipeline thread shares nothing else."""

    settings: Settings
    env: dict[str, str]
    work: Path
    runs_file: Path
    project_id: int
    runs: int
    sync_runs: int
    reviewed: dict[str, str]


def one_round(ctx: SoakContext, target: PredictTarget, number: int) -> RoundResult:
    """Append new runs, queue an export, sync them while it runs, sync again, check both."""
    before = ctx.runs + number * ctx.sync_runs
    append_runs(ctx.runs_file, before, before + ctx.sync_runs)
    job = enqueue_export(ctx.settings, {"project": str(ctx.project_id)})
    started = time.perf_counter()
    report = cli_sync(ctx.env, ctx.work, ctx.runs_file)
    sync_s = time.perf_counter() - started
    started = time.perf_counter()
    rerun = cli_sync(ctx.env, ctx.work, ctx.runs_file)
    rerun_s = time.perf_counter() - started
    token = ctx.settings.secret("label_studio_api_key") or ""
    tasks = list_tasks(ctx.settings.label_studio_url, token, ctx.project_id)
    target.tasks = tasks
    status, outcome = wait_export(job)
    check = ExportCheck(str(job.id))
    if job.enqueued_at and job.started_at and job.ended_at:
        check.queued_s = (job.started_at - job.enqueued_at).total_seconds()
        check.run_s = (job.ended_at - job.started_at).total_seconds()
    if isinstance(outcome, dict):
        manifest_path = Path(str(outcome["path"])) / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        task_runs = {int(t["id"]): str(t["data"].get("run_id")) for t in tasks}
        bounds = (before, before + ctx.sync_runs)
        check_export(manifest, ctx.reviewed, bounds, task_runs, check)
    else:
        check.mismatches.append(f"export {status}: {outcome}")
        check.lost = sum(1 for d in ctx.reviewed.values() if d in ("accepted", "edited"))
    return RoundResult(number, report, sync_s, rerun, rerun_s, check)


# --- logs ------------------------------------------------------------------------------------

ACCESS_STATUS = re.compile(r'"(?:GET|POST) (\S+) HTTP/[\d.]+" (\d{3}) ')


def log_findings(work: Path) -> list[str]:
    """What the servers' own logs say went wrong: 5xx answers, gunicorn worker timeouts,
    errors and tracebacks. Label Studio logs every line twice (two handlers), so lines are
    counted once; its "Invalid page" errors are the SDK's pager reading one page past the
    end, not failures."""
    findings = []
    for name in ("backend", "worker", "label-studio"):
        path = work / f"{name}.log"
        if not path.exists():
            continue
        lines = list(dict.fromkeys(path.read_text(encoding="utf-8", errors="replace").splitlines()))
        statuses: Counter[str] = Counter()
        for line in lines:
            match = ACCESS_STATUS.search(line)
            if match and match.group(2).startswith("5"):
                statuses[f"{match.group(1).split('?')[0]} {match.group(2)}"] += 1
        markers = {
            "errors": sum(1 for ln in lines if "[ERROR]" in ln and "Invalid page" not in ln),
            "tracebacks": sum(1 for ln in lines if ln.startswith("Traceback")),
            "worker timeouts": sum(1 for ln in lines if "WORKER TIMEOUT" in ln),
            "database is locked": sum(1 for ln in lines if "database is locked" in ln),
        }
        if name == "label-studio":  # its tracebacks include every harmless 404 of the pager
            markers.pop("tracebacks")
        parts = [f"{k} {v}" for k, v in markers.items() if v]
        parts += [f"{k}: {v}" for k, v in sorted(statuses.items())]
        findings.append(f"{name}.log: {', '.join(parts) if parts else 'no errors'}")
    return findings


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of load")
    parser.add_argument("--clients", type=int, default=20, help="concurrent /predict clients")
    parser.add_argument("--runs", type=int, default=1000, help="runs synced and reviewed first")
    parser.add_argument("--sync-runs", type=int, default=500, help="new runs per sync round")
    parser.add_argument("--fresh", type=float, default=0.1, help="share of never-seen tasks")
    parser.add_argument("--log-dir", type=Path, help="keep the servers' logs here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tracetune-soak-") as tmp:
        work = args.log_dir.resolve() if args.log_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with servers(work) as (ls_url, token, redis_url), processes() as started:
            client = LabelStudio(base_url=ls_url, api_key=token, timeout=600)
            return soak(args, work, ls_url, token, redis_url, client, started)


def soak(
    args: argparse.Namespace,
    work: Path,
    ls_url: str,
    token: str,
    redis_url: str,
    client: LabelStudio,
    started: list[subprocess.Popen[bytes]],
) -> int:
    backend_url = f"http://127.0.0.1:{free_port()}"
    export_root = work / "exports"
    env = {
        **os.environ,
        "LABEL_STUDIO_URL": ls_url,
        "LABEL_STUDIO_API_KEY": token,
        "REDIS_URL": redis_url,
        "TRACETUNE_BACKEND_URL": backend_url,
        "TRACETUNE_QUEUE": QUEUE,
        "TRACETUNE_STATE_DIR": str(work / "state"),
        "TRACETUNE_EXPORT_DIR": str(export_root),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    settings = Settings(
        label_studio_url=ls_url,
        label_studio_api_key=SecretStr(token),
        redis_url=redis_url,
        tracetune_queue=QUEUE,
        tracetune_export_dir=export_root,
    )

    t0 = time.perf_counter()
    port = backend_url.rsplit(":", 1)[1]
    backend = start_process(
        "backend", ["backend", "--host", "127.0.0.1", "--port", port], env, work
    )
    started.append(backend)
    started.append(start_process("worker", ["worker", "--name", "tracetune-soak"], env, work))

    runs_file = work / "runs.jsonl"
    runs_file.write_text("", encoding="utf-8")
    append_runs(runs_file, 0, args.runs)
    first = cli_sync(env, work, runs_file)
    assert first["imported"] == args.runs, first
    project_id = int(first["project_id"])
    tasks = list_tasks(ls_url, token, project_id)
    print(f"synced {first['imported']} runs in {time.perf_counter() - t0:.1f} s")
    t1 = time.perf_counter()
    reviewed = review_all(client, tasks)
    print(f"reviewed {len(reviewed)} tasks {dict(Counter(reviewed.values()))} "
          f"in {time.perf_counter() - t1:.1f} s")  # fmt: skip

    wait_backend(backend_url, backend)
    project = client.projects.get(id=project_id)
    created: datetime = project.created_at  # type: ignore[assignment]
    target = PredictTarget(
        url=backend_url,
        project_uid=f"{project_id}.{int(created.timestamp())}",
        label_config=str(project.label_config),
        tasks=tasks,
        fresh_share=args.fresh,
        fresh_counter=iter(range(10**9)),
    )
    warm = httpx.post(f"{backend_url}/predict", json=target.body(random.Random(0)), timeout=300)
    warm.raise_for_status()
    print(f"backend ready (gunicorn, model loaded) {time.perf_counter() - t0:.1f} s after start")

    ctx = SoakContext(
        settings, env, work, runs_file, project_id, args.runs, args.sync_runs, reviewed
    )
    stats = LoadStats()
    stop = threading.Event()
    rounds: list[RoundResult] = []
    failures: list[str] = []
    print(f"load average before the soak: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    soak_started = time.perf_counter()
    deadline = time.monotonic() + args.duration
    clients = [
        threading.Thread(target=client_loop, args=(target, stats, stop, seed), daemon=True)
        for seed in range(args.clients)
    ]
    for thread in clients:
        thread.start()
    worker = threading.Thread(
        target=pipeline, args=(ctx, target, deadline, rounds, failures), daemon=True
    )
    worker.start()
    # The clients run for the whole duration and, if a round is still running, until it ends:
    # every sync and export is measured under load.
    while time.monotonic() < deadline or worker.is_alive():
        time.sleep(0.5)
        if any(p.poll() is not None for p in started):
            failures.append("a server process exited during the soak")
            break
    stop.set()
    for thread in clients:
        thread.join(timeout=PREDICT_TIMEOUT_S + 10)
    soak_s = time.perf_counter() - soak_started

    final_tasks = list_tasks(ls_url, token, project_id)
    run_ids = Counter(str(t["data"].get("run_id")) for t in final_tasks)
    expected_runs = {run_id_of(i) for i in range(args.runs + len(rounds) * args.sync_runs)}
    sync_lost = len(expected_runs - set(run_ids))
    ls_doubled = sum(n - 1 for n in run_ids.values() if n > 1)
    unexpected = len(set(run_ids) - expected_runs)

    return report(args, stats, soak_s, rounds, failures, final_tasks, sync_lost, ls_doubled,
                  unexpected, work)  # fmt: skip


def report(
    args: argparse.Namespace,
    stats: LoadStats,
    soak_s: float,
    rounds: list[RoundResult],
    failures: list[str],
    final_tasks: list[dict[str, Any]],
    sync_lost: int,
    ls_doubled: int,
    unexpected: int,
    work: Path,
) -> int:
    """Print what happened; the exit code says whether anything failed."""
    requests = len(stats.latencies_ms)
    errors = sum(stats.errors.values())
    p50, p95, p99 = (stats.percentile(f) for f in (0.5, 0.95, 0.99))
    top = max(stats.latencies_ms, default=0.0)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"soak: {args.clients} clients for {soak_s:.1f} s ({args.duration:g} s asked), "
          f"fresh share {args.fresh:g}, {os.cpu_count()} CPUs, load average {load}")  # fmt: skip
    print(f"/predict: {requests} requests, {requests - errors} served, {errors} errors, "
          f"{stats.tasks_predicted} tasks predicted, {requests / soak_s:.1f} req/s")  # fmt: skip
    print(f"latency ms: p50 {p50:.0f}  p95 {p95:.0f}  p99 {p99:.0f}  max {top:.0f}")
    for message, count in stats.errors.most_common(8):
        print(f"  error x{count}: {message}")
    mismatches = list(failures)
    lost, doubled = sync_lost, ls_doubled + unexpected
    for r in rounds:
        e = r.export
        print(f"round {r.number + 1}: sync imported {r.sync['imported']} "
              f"(already present {r.sync['already_present']}) in {r.sync_s:.1f} s; "
              f"re-run imported {r.rerun['imported']} (fetched {r.rerun['fetched']}) "
              f"in {r.rerun_s:.1f} s; export {e.export_id} of {e.tasks} tasks in "
              f"{e.run_s:.1f} s (queued {e.queued_s:.1f} s): {e.examples} "
              f"valid={e.valid} lost={e.lost} doubled={e.doubled}")  # fmt: skip
        lost += e.lost
        doubled += e.doubled
        mismatches += [f"round {r.number + 1}: {m}" for m in e.mismatches[:5]]
        if r.sync["imported"] != args.sync_runs:
            mismatches.append(f"round {r.number + 1}: sync imported {r.sync['imported']}")
        if r.rerun["imported"] != 0:
            mismatches.append(f"round {r.number + 1}: re-run imported {r.rerun['imported']}")
    expected_total = args.runs + len(rounds) * args.sync_runs
    print(f"Label Studio: {len(final_tasks)} tasks (expected {expected_total}); runs missing "
          f"{sync_lost}, duplicated {ls_doubled}, unexpected {unexpected}")  # fmt: skip
    if len(final_tasks) != expected_total:
        mismatches.append(f"{len(final_tasks)} tasks in Label Studio, {expected_total} expected")
    for line in log_findings(work):
        print(line)
    for line in mismatches:
        print(f"MISMATCH {line}")
    print(f"requests={requests} errors={errors} p95_ms={p95:.0f} lost={lost} doubled={doubled}")
    return 1 if errors or lost or doubled or mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
