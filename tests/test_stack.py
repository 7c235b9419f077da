"""`tracetune up / status / down` on real processes: reuse on a second up, stop exactly them,
and nothing of the stack open to other users of the machine (issue 10, case 7)."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tracetune.sync.stack.local_stack import StackState, pid_alive
from tracetune.sync.stack.servers import free_port

pytestmark = pytest.mark.integration

TRACETUNE = str(Path(sys.executable).with_name("tracetune"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACETUNE, *args], capture_output=True, text=True, timeout=400, check=False
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """One `tracetune up` for the module; `down` at the end whatever the tests did."""
    state_dir = tmp_path_factory.mktemp("stack") / "state"
    ports = ["--label-studio-port", str(free_port()), "--redis-port", str(free_port()),
             "--backend-port", str(free_port()), "--workers", "1"]  # fmt: skip
    first = _run("up", "--state-dir", str(state_dir), *ports)
    try:
        assert first.returncode == 0, first.stderr
        yield state_dir, ports
    finally:
        _run("down", "--state-dir", str(state_dir))


def _env_file(state_dir: Path) -> dict[str, str]:
    lines = (state_dir / "stack.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def _listening(port: int) -> set[str]:
    """Local addresses with a socket listening on `port`, from the kernel's own tables."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _process_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def test_every_service_listens_on_loopback_only(stack: tuple[Path, list[str]]) -> None:
    state = StackState.load(stack[0])
    loopback = "0100007F"  # 127.0.0.1 as the kernel writes it
    for name in ("label_studio", "redis", "backend"):
        port = int(state.services[name].url.rsplit(":", 1)[1].split("/")[0])
        assert _listening(port) == {loopback}, name


def test_no_secret_is_on_a_command_line(stack: tuple[Path, list[str]]) -> None:
    state = StackState.load(stack[0])
    secrets = [state.password, state.token, state.redis_password, state.backend_password]
    checked = 0
    for service in state.services.values():
        for pid in _process_group(service.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert not [s for s in secrets if s in cmdline], cmdline.replace("\0", " ")
            checked += 1
    assert checked >= len(state.services)


def test_the_state_folder_and_everything_in_it_is_private(stack: tuple[Path, list[str]]) -> None:
    state_dir = stack[0]
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    paths = [state_dir, *state_dir.rglob("*")]
    names = {p.name for p in paths}
    assert {"label_studio.sqlite3", "stack.env", "stack.json", "label-studio.log"} <= names
    assert any(p.suffix == ".aof" or "appendonly" in p.name for p in paths)
    shared = [f"{p} {oct(p.stat().st_mode)}" for p in paths if p.stat().st_mode & 0o077]
    assert shared == []


def test_the_backend_answers_only_with_the_stack_credentials(
    stack: tuple[Path, list[str]],
) -> None:
    env = _env_file(stack[0])
    url = env["TRACETUNE_BACKEND_URL"]
    for method, path in (("GET", "/health"), ("POST", "/predict"), ("POST", "/webhook"),
                         ("POST", "/train"), ("POST", "/setup")):  # fmt: skip
        response = httpx.request(method, f"{url}{path}", json={}, timeout=30)
        assert response.status_code == 401, path
    auth = (env["BASIC_AUTH_USER"], env["BASIC_AUTH_PASS"])
    assert httpx.get(f"{url}/health", auth=auth, timeout=30).json()["status"] == "UP"


def test_redis_needs_the_password_from_stack_env(stack: tuple[Path, list[str]]) -> None:
    state = StackState.load(stack[0])
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(state.services["redis"].url).ping()
    assert redis.Redis.from_url(_env_file(stack[0])["REDIS_URL"]).ping()
    status = _run("status", "--state-dir", str(stack[0]))
    assert state.redis_password not in status.stdout + status.stderr


def test_label_studio_sends_nothing_outside(stack: tuple[Path, list[str]]) -> None:
    """No analytics tag on the login page, no Sentry in the app's pages or its server."""
    state = StackState.load(stack[0])
    url = state.services["label_studio"].url
    with httpx.Client(base_url=url, timeout=30) as browser:
        login = browser.get("/user/login/").text
        assert "collect_analytics = false" in login and "googletagmanager" not in login
        browser.post(
            "/user/login/",
            data={"email": state.username, "password": state.password,
                  "csrfmiddlewaretoken": browser.cookies.get("csrftoken", "")},
            headers={"Referer": f"{url}/user/login/"},
        )  # fmt: skip
        app_page = browser.get("/projects/").text
    assert "sentry_dsn: null" in app_page and "sentry.io" not in app_page
    environ = Path(f"/proc/{state.services['label_studio'].pid}/environ").read_bytes()
    assert b"\0LABEL_STUDIO_SENTRY_DSN=\0" in environ  # the server's own error reports


def test_up_reuses_running_services_and_down_stops_exactly_them(
    stack: tuple[Path, list[str]],
) -> None:
    state_dir, ports = stack
    state = StackState.load(state_dir)
    pids = {name: svc.pid for name, svc in state.services.items()}
    assert set(pids) == {"redis", "label_studio", "backend", "worker-1"}
    url = state.services["label_studio"].url
    projects = httpx.get(
        f"{url}/api/projects", headers={"Authorization": f"Token {state.token}"}, timeout=30
    )
    assert projects.status_code == 200
    env_file = _env_file(state_dir)
    assert env_file["LABEL_STUDIO_URL"] == url
    assert oct((state_dir / "stack.env").stat().st_mode)[-3:] == "600"

    second = _run("up", "--state-dir", str(state_dir), *ports)
    assert second.returncode == 0
    assert "already running" in second.stderr
    assert {n: s.pid for n, s in StackState.load(state_dir).services.items()} == pids

    healthy = _run("status", "--state-dir", str(state_dir))
    assert healthy.returncode == 0
    assert healthy.stdout.count("healthy") == 4
    assert env_file["TRACETUNE_BACKEND_URL"] == state.services["backend"].url

    stopped = _run("down", "--state-dir", str(state_dir))
    assert stopped.returncode == 0
    assert not any(pid_alive(pid) for pid in pids.values())
    after = _run("status", "--state-dir", str(state_dir))
    assert after.returncode == 1
