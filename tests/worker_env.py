"""Environment and CLI helpers shared by the worker and fine-tune tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TRACETUNE = Path(sys.executable).with_name("tracetune")


def worker_env(
    tmp_path: Path, redis_url: str, label_studio_url: str = "", token: str = "", **extra: str
) -> dict[str, str]:
    """Settings for a worker or CLI process; `extra` keys are upper-cased env var names."""
    env = {
        "REDIS_URL": redis_url,
        "LABEL_STUDIO_URL": label_studio_url,
        "LABEL_STUDIO_API_KEY": token,
        "TRACETUNE_EXPORT_DIR": str(tmp_path / "exports"),
        "TRACETUNE_STATE_DIR": str(tmp_path / "state"),
        "TRACETUNE_RETRY_BACKOFF_S": "1",
        "TRACETUNE_POLL_INTERVAL_S": "1",
    }
    env.update({key.upper(): value for key, value in extra.items()})
    return env


def tracetune(
    *args: str, env: dict[str, str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real console script; `check` asserts a zero exit and shows stderr if not."""
    result = subprocess.run(
        [str(TRACETUNE), *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result
