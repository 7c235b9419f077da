"""A real `tracetune worker` process (an RQ worker with its scheduler) on the test Redis.

`rq_worker(env)` starts one in a fresh working directory with the given environment; it is
stopped (or killed, with its work horse, for the crash tests) at the end of the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from rq.job import Job, JobStatus

TRACETUNE = Path(sys.executable).with_name("tracetune")


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc (the RQ work horse is one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (after the parenthesised command, which may hold spaces) is the parent pid.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the work horse and the worker: a machine crash, nothing cleaned up."""
        for child in _children(self.process.pid):
            os.kill(child, signal.SIGKILL)
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def rq_worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        workdir = tmp_path / f"worker-{len(started)}"
        workdir.mkdir()
        log = workdir / "worker.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [str(TRACETUNE), "worker", "--name", f"test-{os.getpid()}-{len(started)}"],
                cwd=workdir,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(process, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for_job(
    redis_url: str,
    job_id: str,
    statuses: tuple[JobStatus, ...] = (JobStatus.FINISHED, JobStatus.FAILED),
    timeout_s: float = 180,
) -> Job:
    """Poll until the job reaches one of `statuses`; fail with the job's state otherwise."""
    connection = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        job = Job.fetch(job_id, connection=connection)
        status = job.get_status()
        if status in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {status} after {timeout_s:.0f} s")
