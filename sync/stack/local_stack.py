"""`tracetune up` / `down` / `status`: the whole loop on one machine, without Docker.

Services run as detached processes recorded in `<state dir>/stack.json` (pid, port, url), so a
second `up` reuses what is running and `down` stops exactly what `up` started. Credentials are
generated once and written to `<state dir>/stack.env` (mode 0600), which `Settings` reads, so
every later `tracetune` command talks to this stack without extra flags.

Nothing of the stack is open to other users of the machine: every service listens on
127.0.0.1, Redis and the ML backend require the generated password (basic auth for the
backend, as Label Studio sends it), secrets travel in environments and 0600 files only, and
the state folder is 0700 with files created 0600 (see `servers`).
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

from tracetune.sync.stack.servers import (
    PRIVATE_UMASK,
    ensure_port_free,
    private_dir,
    private_log,
    start_label_studio,
    start_redis,
    wait_until,
)

STACK_FILE = "stack.json"
ENV_FILE = "stack.env"


@dataclass
class Service:
    name: str
    pid: int
    url: str
    health_url: str | None = None


def _password() -> str:
    return secrets.token_urlsafe(12)


@dataclass
class StackState:
    username: str = "admin@tracetune.local"
    password: str = field(default_factory=_password)
    token: str = field(default_factory=lambda: secrets.token_hex(20))
    #: The ML backend's basic auth, which Label Studio sends (`tracetune backend connect`).
    backend_user: str = "labelstudio"
    backend_password: str = field(default_factory=_password)
    redis_password: str = field(default_factory=_password)
    services: dict[str, Service] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> StackState:
        path = state_dir / STACK_FILE
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        services = {name: Service(**svc) for name, svc in raw.pop("services", {}).items()}
        if "redis" in services and "redis_password" not in raw:
            raw["redis_password"] = ""  # a Redis started before passwords: it has none
        return cls(**raw, services=services)

    def save(self, state_dir: Path) -> None:
        private_dir(state_dir)
        path = state_dir / STACK_FILE
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @property
    def redis_url(self) -> str:
        """Redis with its password, for the settings of the stack's processes only."""
        url = self.services["redis"].url
        if not self.redis_password:
            return url
        return url.replace("redis://", f"redis://:{self.redis_password}@", 1)

    def auth_for(self, service: Service) -> tuple[str, str] | None:
        return (self.backend_user, self.backend_password) if service.name == "backend" else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def healthy(service: Service, auth: tuple[str, str] | None = None) -> bool:
    """Alive, and answering its health URL when it has one."""
    if not pid_alive(service.pid):
        return False
    if service.health_url is None:
        return True
    try:
        return httpx.get(service.health_url, timeout=2, auth=auth).status_code == 200
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
    state.redis_password = state.redis_password or _password()
    server = start_redis(config.redis, state_dir / "redis", password=state.redis_password)
    assert server.process is not None
    # The recorded URL is shown by `up` and `status`: it names the server, not the password.
    return Service("redis", server.process.pid, f"redis://127.0.0.1:{config.redis}/0")


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
    with private_log(state_dir / f"{name}.log") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tracetune.sync.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )
    return process.pid


def _start_backend(state: StackState, state_dir: Path, config: StackConfig) -> Service:
    ensure_port_free(config.backend, "the ML backend")
    url = f"http://127.0.0.1:{config.backend}"
    args = ["backend", "--host", "127.0.0.1", "--port", str(config.backend)]
    pid = _tracetune_process("backend", args, state, state_dir, TRACETUNE_BACKEND_URL=url)
    wait_until(f"{url}/health", 120, None, auth=(state.backend_user, state.backend_password))
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
    values = {
        "LABEL_STUDIO_API_KEY": state.token,
        "BASIC_AUTH_USER": state.backend_user,
        "BASIC_AUTH_PASS": state.backend_password,
    }
    if "label_studio" in state.services:
        values["LABEL_STUDIO_URL"] = state.services["label_studio"].url
    if "redis" in state.services:
        values["REDIS_URL"] = state.redis_url
    if "backend" in state.services:
        values["TRACETUNE_BACKEND_URL"] = state.services["backend"].url
    return values


def write_env(state: StackState, state_dir: Path) -> Path:
    """`stack.env`, which `Settings` reads, so later commands reach this stack."""
    path = state_dir / ENV_FILE
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write("".join(f"{key}={value}\n" for key, value in stack_env(state).items()))
    path.chmod(0o600)
    return path


def up(
    state_dir: Path,
    config: StackConfig,
    only: list[str] | None = None,
    report: Callable[[str], None] = lambda _: None,
) -> StackState:
    """Start what is not running yet; reuse what is. Returns the stack's state."""
    private_dir(state_dir)
    state = StackState.load(state_dir)
    for name, starter in starters(config).items():
        if only is not None and name not in only:
            continue
        current = state.services.get(name)
        if current is not None and healthy(current, state.auth_for(current)):
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
    return {name: (svc, healthy(svc, state.auth_for(svc))) for name, svc in state.services.items()}
