"""`tracetune up / status / down` on real processes: reuse on a second up, stop exactly them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tracetune.sync.stack.local_stack import StackState, pid_alive
from tracetune.sync.stack.servers import free_port

TRACETUNE = str(Path(".venv/bin/tracetune").resolve())


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACETUNE, *args], capture_output=True, text=True, timeout=400, check=False
    )


@pytest.mark.integration
def test_up_reuses_running_services_and_down_stops_exactly_them(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    ports = ["--label-studio-port", str(free_port()), "--redis-port", str(free_port()),
             "--backend-port", str(free_port()), "--workers", "1"]  # fmt: skip
    try:
        first = _run("up", "--state-dir", str(state_dir), *ports)
        assert first.returncode == 0, first.stderr
        state = StackState.load(state_dir)
        pids = {name: svc.pid for name, svc in state.services.items()}
        assert set(pids) == {"redis", "label_studio", "backend", "worker-1"}
        url = state.services["label_studio"].url
        projects = httpx.get(
            f"{url}/api/projects", headers={"Authorization": f"Token {state.token}"}, timeout=30
        )
        assert projects.status_code == 200
        env_file = (state_dir / "stack.env").read_text()
        assert f"LABEL_STUDIO_URL={url}" in env_file
        assert oct((state_dir / "stack.env").stat().st_mode)[-3:] == "600"

        second = _run("up", "--state-dir", str(state_dir), *ports)
        assert second.returncode == 0
        assert "already running" in second.stderr
        assert {n: s.pid for n, s in StackState.load(state_dir).services.items()} == pids

        healthy = _run("status", "--state-dir", str(state_dir))
        assert healthy.returncode == 0
        assert healthy.stdout.count("healthy") == 4
        backend_url = state.services["backend"].url
        assert httpx.get(f"{backend_url}/health", timeout=5).status_code == 200
        assert f"TRACETUNE_BACKEND_URL={backend_url}" in env_file
    finally:
        stopped = _run("down", "--state-dir", str(state_dir))
    assert stopped.returncode == 0
    assert not any(pid_alive(pid) for pid in pids.values())
    after = _run("status", "--state-dir", str(state_dir))
    assert after.returncode == 1
