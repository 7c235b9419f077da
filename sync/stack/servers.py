"""Start Label Studio and Redis on loopback for tests, the demo and `tracetune up`.

Label Studio lives in its own virtual environment (its pins conflict with ours), so it is
started as a subprocess of that environment's `label-studio` script, never imported.

Both are started locked down: listening on 127.0.0.1 only, secrets passed in the environment
or a 0600 file (never on a command line, which every user sees in `ps`), files created 0600
in 0700 folders (umask 077), and Label Studio's error reporting, usage analytics and update
check (which call hosts outside the machine) switched off.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from tracetune.sync.errors import ConfigurationError, ServiceUnavailableError

DEFAULT_LABEL_STUDIO_BIN = Path(".venv-ls/bin/label-studio")
#: Files the servers create are readable by their owner only.
PRIVATE_UMASK = 0o077
#: Label Studio settings that would make it call outside hosts (Sentry error reports for the
#: server and the browser, usage analytics, the PyPI version check).
NO_TELEMETRY = {
    "LABEL_STUDIO_SENTRY_DSN": "",
    "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
    "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
    "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
}

#: IANA special-purpose address ranges (RFC 6890), which Label Studio 1.23 refuses to call by
#: default (its SSRF protection), loopback and Docker's private networks included.
RESERVED_SUBNETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "233.252.0.0/24",
    "240.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128", "::ffff:0:0/96",
    "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:0000::/32",
    "2001:20::/28", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
)  # fmt: skip


def ssrf_settings(allowed_subnet: str) -> dict[str, str]:
    """Label Studio settings that keep its SSRF protection but let it reach our ML backend.

    The ML backend lives on the stack's own network (loopback here, a Docker network in
    compose), which the default protection refuses; every other reserved range stays banned.
    """
    banned = [subnet for subnet in RESERVED_SUBNETS if subnet != allowed_subnet]
    return {
        "USE_DEFAULT_BANNED_SUBNETS": "false",
        "USER_ADDITIONAL_BANNED_SUBNETS": ",".join(banned),
    }


def private_dir(path: Path) -> Path:
    """A folder only its owner can enter (tightened if it already existed)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def private_log(path: Path) -> BinaryIO:
    """A log opened for appending, readable by its owner only (tightened if it existed)."""
    handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    path.chmod(0o600)
    return handle


def ensure_port_free(port: int, what: str) -> None:
    """Fail in one line when something already listens on the port: waiting for a health URL
    there would otherwise mistake another server for the one being started."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener, not TIME_WAIT
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ServiceUnavailableError(
                f"cannot start {what}: port {port} on 127.0.0.1 is in use ({exc.strerror})"
            ) from exc


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check_url: str,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None,
    auth: tuple[str, str] | None = None,
) -> None:
    """Poll a URL until it answers 200; fail early if the process that should serve it died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceUnavailableError(
                f"server for {check_url} exited with {process.returncode}"
            )
        try:
            if httpx.get(check_url, timeout=2, auth=auth).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ServiceUnavailableError(f"{check_url} did not come up within {timeout_s:.0f} s")


@dataclass
class LabelStudioServer:
    url: str
    username: str
    password: str
    token: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def label_studio_bin() -> Path:
    """The `label-studio` script of its own environment.

    `TRACETUNE_LABEL_STUDIO_BIN` wins; then `.venv-ls` in the working directory or in the
    checkout this package runs from (what `make install` creates); then `label-studio` on PATH.
    """
    configured = os.environ.get("TRACETUNE_LABEL_STUDIO_BIN")
    candidates = (
        [Path(configured)]
        if configured
        else [
            DEFAULT_LABEL_STUDIO_BIN,
            Path(__file__).resolve().parents[2] / DEFAULT_LABEL_STUDIO_BIN,
        ]
    )
    on_path = shutil.which("label-studio")
    if on_path and not configured:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.exists():
            return path.resolve()
    raise ConfigurationError(
        f"Label Studio is not installed at {candidates[0]}: run `make install` "
        "or set TRACETUNE_LABEL_STUDIO_BIN"
    )


def start_label_studio(
    data_dir: Path,
    port: int,
    username: str,
    password: str,
    token: str,
    log_path: Path,
    timeout_s: float = 240,
) -> LabelStudioServer:
    """Start Label Studio with SQLite under `data_dir` and an API token usable by the SDK.

    `--internal-host` is what Label Studio binds to (`--host` only names it in URLs); the
    admin's e-mail, password and token go in its environment.
    """
    ensure_port_free(port, "Label Studio")
    private_dir(data_dir)
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        "DJANGO_DB": "sqlite",
        **NO_TELEMETRY,
        **ssrf_settings("127.0.0.0/8"),
    }
    command = [
        str(label_studio_bin()), "start", "--no-browser", "--host", "127.0.0.1",
        "--internal-host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with private_log(log_path) as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )
    url = f"http://127.0.0.1:{port}"
    server = LabelStudioServer(url, username, password, token, process)
    try:
        wait_until(f"{url}/health", timeout_s, process)
        enable_legacy_tokens(url, username, password)
    except Exception:
        server.stop()
        raise
    return server


def enable_legacy_tokens(url: str, username: str, password: str) -> None:
    """Let the organization accept the fixed `--user-token` (1.23 disables it by default).

    Done over HTTP as the admin would in the UI's settings page: a session login, then the
    organization's JWT settings endpoint.
    """
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/user/login/")
        client.post(
            "/user/login/",
            data={
                "email": username,
                "password": password,
                "csrfmiddlewaretoken": client.cookies.get("csrftoken", ""),
            },
            headers={"Referer": f"{url}/user/login/"},
        )
        response = client.post(
            "/api/jwt/settings",
            json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": True},
            headers={"X-CSRFToken": client.cookies.get("csrftoken") or "", "Referer": url},
        )
    if response.status_code != 200:
        raise ServiceUnavailableError(
            f"could not enable API tokens in Label Studio: HTTP {response.status_code}"
        )


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def start_redis(
    port: int, data_dir: Path, appendonly: bool = True, password: str | None = None
) -> RedisServer:
    """Start `redis-server` on loopback with its data under `data_dir`.

    Its settings, the password included, are in a 0600 `redis.conf`, not on its command line.
    The server's URL carries the password, for the settings of the processes that use it.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise ConfigurationError("redis-server is not installed: run `make install`")
    ensure_port_free(port, "Redis")
    private_dir(data_dir)
    settings = {
        "port": str(port), "bind": "127.0.0.1", "dir": f'"{data_dir}"', "save": '""',
        "appendonly": "yes" if appendonly else "no", "daemonize": "no",
    }  # fmt: skip
    if password:
        settings["requirepass"] = password
    conf = data_dir / "redis.conf"
    with os.fdopen(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write("".join(f"{name} {value}\n" for name, value in settings.items()))
    with private_log(data_dir / "redis.log") as log:
        process = subprocess.Popen(
            [binary, str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )
    userinfo = f":{password}@" if password else ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return RedisServer(f"redis://{userinfo}127.0.0.1:{port}/0", process)
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    raise ServiceUnavailableError(f"redis-server did not start on port {port}")
