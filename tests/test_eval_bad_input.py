"""Bad input to the update loop: one clear line and an exit code each, nothing half-written
in the registry: no held-out split, an unknown model, an unreachable endpoint, a registry that
is down (a fine-tune that finishes meanwhile is registered once it is back)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from export_helpers import annotation, chat_data, task, verdict
from finetune_exports import recorded_export
from worker_env import tracetune, worker_env

from tracetune.sync.export.run import ExportRequest, export_tasks
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import free_port
from tracetune.sync.worker.jobs import record_export

pytestmark = pytest.mark.integration


def _one_line(result: Any, code: int, starts: str) -> str:
    """The failure's one line (after whatever progress the command had shown on stderr)."""
    assert result.returncode == code, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], result.stderr
    assert lines[-1].startswith(f"error: {starts}"), lines[-1]
    return lines[-1]


def _export_without_validation(tmp_path: Path, redis_url: str) -> None:
    accepted = verdict("accept")
    tasks = [
        task(i, chat_data(f"run-{i}", f"Question {i}?", f"Answer {i}."), [annotation(i, accepted)])
        for i in range(1, 13)
    ]
    settings = Settings(redis_url=redis_url, tracetune_export_dir=tmp_path / "exports")
    request = ExportRequest(project="p", validation_fraction=0.0)
    result = export_tasks(tasks, request, settings.export_dir, "x-noval", {"id": 1, "title": "p"})
    record_export(settings, result)


@pytest.fixture
def loop_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    env = worker_env(
        tmp_path,
        redis_url,
        tracetune_registry_uri=f"sqlite:///{tmp_path / 'registry.db'}",
        http_retries="0",
        http_timeout_s="5",
    )
    tracetune("finetune", "tiny-model", str(tmp_path / "tiny"), env=env, cwd=tmp_path)
    tracetune("models", "register", "--local", str(tmp_path / "tiny"), env=env, cwd=tmp_path)
    tracetune("models", "promote", "1", "--reason", "base", env=env, cwd=tmp_path)
    return env


def _history(env: dict[str, str], cwd: Path) -> list[str]:
    out = tracetune("models", "history", "--json", env=env, cwd=cwd).stdout
    return [json.loads(line)["action"] for line in out.splitlines()]


def test_no_held_out_split_an_unknown_model_and_an_unreachable_endpoint(
    tmp_path: Path, redis_url: str, loop_env: dict[str, str]
) -> None:
    env, cwd = loop_env, tmp_path
    _export_without_validation(tmp_path, redis_url)
    recorded_export(tmp_path, redis_url, reviewed=30, export_id="x-val")
    port = free_port()
    tracetune("models", "register", "--model", "gone", "--base-url",
              f"http://127.0.0.1:{port}/v1", env=env, cwd=cwd)  # fmt: skip
    before = _history(env, cwd)

    no_split = tracetune("eval", "run", "--candidate", "2", "--export", "x-noval",
                         "--no-review", env=env, cwd=cwd, check=False)  # fmt: skip
    assert _one_line(no_split, 6, "export x-noval has no held-out split") == (
        "error: export x-noval has no held-out split (sft.validation is empty): export again "
        "with --validation above 0 once more tasks are reviewed"
    )
    unknown = tracetune("eval", "run", "--candidate", "9", env=env, cwd=cwd, check=False)
    _one_line(unknown, 5, "model registry sqlite:///")
    assert "9" in unknown.stderr
    bad_name = tracetune("models", "promote", "latest", "--reason", "x", env=env, cwd=cwd,
                         check=False)  # fmt: skip
    _one_line(bad_name, 6, "name a model version by number")
    missing = tracetune("eval", "report", "ev-nope", env=env, cwd=cwd, check=False)
    _one_line(missing, 5, "no evaluation 'ev-nope'")
    unreachable = tracetune("eval", "run", "--candidate", "2", "--export", "x-val",
                            "--no-review", env=env, cwd=cwd, check=False)  # fmt: skip
    _one_line(unreachable, 3, f"cannot reach the model endpoint at http://127.0.0.1:{port}/v1/")

    assert _history(env, cwd) == before
    shown = json.loads(tracetune("models", "show", "2", "--json", env=env, cwd=cwd).stdout)
    assert shown["evaluations"] == {}


def test_a_registry_that_is_down_is_one_line_and_a_finished_fine_tune_registers_later(
    tmp_path: Path, redis_url: str, loop_env: dict[str, str]
) -> None:
    recorded_export(tmp_path, redis_url, reviewed=24, export_id="x-down")
    down = {**loop_env, "TRACETUNE_REGISTRY_URI": f"http://127.0.0.1:{free_port()}"}
    cwd = tmp_path

    for args in (("models", "list"), ("models", "current"), ("eval", "run", "--no-review")):
        _one_line(tracetune(*args, env=down, cwd=cwd, check=False), 3, "cannot reach the model")
    trained = tracetune("finetune", "start", "--provider", "local", "--model",
                        str(tmp_path / "tiny"), "--param", "max_steps=2", "--now",
                        env=down, cwd=cwd, check=False)  # fmt: skip
    _one_line(trained, 3, "cannot reach the model registry at http://127.0.0.1:")
    listed = tracetune("finetune", "list", "--json", env=down, cwd=cwd).stdout
    record = json.loads(listed.splitlines()[0])
    assert (record["status"], record["model_version"]) == ("succeeded", None)
    assert [v["version"] for v in _versions(loop_env, cwd)] == [1]

    status = tracetune("finetune", "status", record["id"], env=loop_env, cwd=cwd).stdout
    assert "registered as model version 2" in status
    tracetune("finetune", "status", record["id"], env=loop_env, cwd=cwd)
    versions = _versions(loop_env, cwd)
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["lineage"]["finetune_job"] == record["id"]


def _versions(env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    out = tracetune("models", "list", "--json", env=env, cwd=cwd).stdout
    return [json.loads(line) for line in out.splitlines()]
