"""`tracetune up` / `down` / `status`: the whole loop on one machine, without Docker.

Services run as detached processes recorded in `<state dir>/stack.json` (pid, port, url), so a
second `up` reuses what is running and `down` stops exactly what `up` started. Credentials are
generated once and written to `<state dir>/stack.env` (mode 0600), which `Settings` reads, so
every later `tracetune` command talks to this stack without extra flags.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from tracetune.sync.stack.servers import start_label_studio, start_redis, wait_until

STACK_FILE = "stack.json"
ENV_FILE = "stack.env"


@dataclass
class Service:
    name: str
    pid: int
    url: str
    health_url: str | None = None


@dataclass
class StackState:
    username: str = "admin@tracetune.local"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    token: str = field(default_factory=lambda: secrets.token_hex(20))
    services: dict[str, Service] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> StackState:
        path = state_dir / STACK_FILE
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        services = {name: Service(**svc) for name, svc in raw.pop("services", {}).items()}
        return cls(**raw, services=services)

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / STACK_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def healthy(service: Service) -> bool:
    """Alive, and answering its health URL when it has one."""
    if not pid_alive(service.pid):
        return False
    if service.health_url is None:
        return True
    try:
        return httpx.get(service.health_url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class StackConfig:
    """Ports of the local stack and how many RQ workers it runs."""

    label_studio: int = 8080
    redis: int = 6380
    backend: int = 9090
    workers: int = 1


Starter = Callable[[StackState, Path, StackConfig], Service]


def _start_redis(state: StackState, state_dir: Path, config: StackConfig) -> Service:
    server = start_redis(config.redis, state_dir / "redis")
    assert server.process is not None
    return Service("redis", server.process.pid, server.url)


def _start_label_studio(state: StackState, state_dir: Path, config: StackConfig) -> Service:
    server = start_label_studio(
        data_dir=state_dir / "label-studio",
        port=config.label_studio,
        username=state.username,
        password=state.password,
        token=state.token,
        log_path=state_dir / "label-studio.log",
    )
    assert server.process is not None
    return Service("label_studio", server.process.pid, server.url, f"{server.url}/health")


def _tracetune_process(
    name: str, args: list[str], state: StackState, state_dir: Path, **extra_env: str
) -> int:
    """A detached `tracetune` subprocess configured for this stack, logging to a file."""
    env = {**os.environ, **stack_env(state), **extra_env}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with (state_dir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tracetune.sync.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process.pid


def _start_backend(state: StackState, state_dir: Path, config: StackConfig) -> Service:
    url = f"http://127.0.0.1:{config.backend}"
    args = ["backend", "--host", "127.0.0.1", "--port", str(config.backend)]
    pid = _tracetune_process("backend", args, state, state_dir, TRACETUNE_BACKEND_URL=url)
    wait_until(f"{url}/health", 120, None)
    return Service("backend", pid, url, f"{url}/health")


def _worker_starter(index: int) -> Starter:
    def start(state: StackState, state_dir: Path, config: StackConfig) -> Service:
        name = f"worker-{index}"
        pid = _tracetune_process(name, ["worker", "--name", f"tracetune-{name}"], state, state_dir)
        return Service(name, pid, state.services["redis"].url)

    return start


def starters(config: StackConfig) -> dict[str, Starter]:
    """Services in start order: each needs the ones before it."""
    services: dict[str, Starter] = {
        "redis": _start_redis,
        "label_studio": _start_label_studio,
        "backend": _start_backend,
    }
    for index in range(1, config.workers + 1):
        services[f"worker-{index}"] = _worker_starter(index)
    return services


def stack_env(state: StackState) -> dict[str, str]:
    """The settings every tracetune process needs to reach this stack."""
    values = {"LABEL_STUDIO_API_KEY": state.token}
    if "label_studio" in state.services:
        values["LABEL_STUDIO_URL"] = state.services["label_studio"].url
    if "redis" in state.services:
        values["REDIS_URL"] = state.services["redis"].url
    if "backend" in state.services:
        values["TRACETUNE_BACKEND_URL"] = state.services["backend"].url
    return values


def write_env(state: StackState, state_dir: Path) -> Path:
    """`stack.env`, which `Settings` reads, so later commands reach this stack."""
    path = state_dir / ENV_FILE
    path.write_text("".join(f"{key}={value}\n" for key, value in stack_env(state).items()))
    path.chmod(0o600)
    return path


def up(
    state_dir: Path,
    config: StackConfig,
    only: list[str] | None = None,
    report: Callable[[str], None] = lambda _: None,
) -> StackState:
    """Start what is not running yet; reuse what is. Returns the stack's state."""
    state = StackState.load(state_dir)
    for name, starter in starters(config).items():
        if only is not None and name not in only:
            continue
        current = state.services.get(name)
        if current is not None and healthy(current):
            report(f"{name}: already running at {current.url} (pid {current.pid})")
            continue
        report(f"{name}: starting")
        state.services[name] = starter(state, state_dir, config)
        state.save(state_dir)
        report(f"{name}: up at {state.services[name].url}")
    state.save(state_dir)
    write_env(state, state_dir)
    return state


def down(state_dir: Path, report: Callable[[str], None] = lambda _: None) -> None:
    """Stop exactly the processes `up` started (their process groups), in reverse order."""
    state = StackState.load(state_dir)
    for name in reversed(list(state.services)):
        service = state.services.pop(name)
        if pid_alive(service.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while pid_alive(service.pid) and time.monotonic() < deadline:
                _reap(service.pid)
                time.sleep(0.2)
            if pid_alive(service.pid):
                os.killpg(service.pid, signal.SIGKILL)
            report(f"{name}: stopped (pid {service.pid})")
        else:
            report(f"{name}: was not running")
        state.save(state_dir)


def _reap(pid: int) -> None:
    """Collect a child that exited, so it stops looking alive (only when we are its parent)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def status(state_dir: Path) -> dict[str, tuple[Service, bool]]:
    state = StackState.load(state_dir)
    return {name: (svc, healthy(svc)) for name, svc in state.services.items()}
