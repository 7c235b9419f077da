"""`tracetune sync` as a user runs it: real subprocess, real servers, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sync_helpers import cli_env, qa_run, write_jsonl

from tracetune.sync.stack.servers import LabelStudioServer, free_port

TRACETUNE = str(Path(sys.executable).with_name("tracetune"))


def _tracetune(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACETUNE, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _runs_file(tmp_path: Path) -> Path:
    lines = [json.dumps(qa_run(i)) for i in range(4)]
    lines.insert(2, "{not json")
    lines.append(json.dumps({"id": "x", "inputs": {"blob": 1}, "outputs": {"x": [1]}}))
    path = tmp_path / "runs.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"bad utf8": "\xff\xfe"}\n')
    return path


def test_dry_run_json_prints_one_line_per_run_with_its_task_data_or_skip_reason(
    tmp_path: Path,
) -> None:
    result = _tracetune("sync", "--file", str(_runs_file(tmp_path)), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    tasks = [line for line in lines if "data" in line]
    skips = {line["run_id"]: line["skip"] for line in lines if "skip" in line}
    assert [t["run_id"] for t in tasks] == [qa_run(i)["id"] for i in range(4)]
    assert tasks[0]["kind"] == "chat_review"
    assert tasks[0]["data"]["messages"][-1] == {
        "role": "assistant",
        "content": "Open Settings and enable feature 0.",
    }
    assert skips == {
        "runs.jsonl:3": "malformed run: not valid JSON",
        "x": "unknown run shape",
        "runs.jsonl:7": "malformed run: no id",
    }


@pytest.mark.integration
def test_sync_prints_a_summary_and_a_second_run_imports_nothing(
    tmp_path: Path, label_studio_server: LabelStudioServer, redis_url: str, project_title: str
) -> None:
    env = cli_env(label_studio_server.url, label_studio_server.token, redis_url)
    path = _runs_file(tmp_path)
    first = _tracetune("sync", "-p", project_title, "--file", str(path), env=env)
    assert first.returncode == 0, first.stderr
    assert "imported" in first.stdout and "4" in first.stdout
    assert "skipped: malformed run: not valid JSON" in first.stdout

    second = _tracetune("sync", "-p", project_title, "--file", str(path), "--json", env=env)
    report = json.loads(second.stdout)
    assert report["imported"] == 0
    assert report["already_present"] == 4
    assert report["skipped"] == {
        "malformed run: not valid JSON": 1,
        "malformed run: no id": 1,
        "unknown run shape": 1,
    }


@pytest.mark.integration
def test_a_wrong_label_studio_key_is_one_clear_line_and_exit_4(
    tmp_path: Path, label_studio_server: LabelStudioServer, redis_url: str
) -> None:
    env = cli_env(label_studio_server.url, "0" * 40, redis_url)
    result = _tracetune("sync", "--file", str(_runs_file(tmp_path)), env=env)
    assert result.returncode == 4
    assert "refused the API key" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_label_studio_is_one_clear_line_and_exit_3(tmp_path: Path) -> None:
    env = cli_env(f"http://127.0.0.1:{free_port()}", "0" * 40, f"redis://127.0.0.1:{free_port()}")
    result = _tracetune("sync", "--file", str(_runs_file(tmp_path)), env=env)
    assert result.returncode == 3
    assert "cannot reach Label Studio" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_run_file_is_one_clear_line(tmp_path: Path) -> None:
    result = _tracetune("sync", "--file", str(tmp_path / "nope.jsonl"), "--dry-run")
    assert result.returncode == 5
    assert "does not exist" in result.stderr


def test_an_empty_run_file_syncs_nothing_in_a_dry_run(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "empty.jsonl", [])
    result = _tracetune("sync", "--file", str(path), "--dry-run", "--json")
    assert result.returncode == 0
    assert result.stdout == ""


def test_two_sources_at_once_are_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [qa_run(0)])
    result = _tracetune("sync", "--file", str(path), "--dataset", "d", "--dry-run")
    assert result.returncode == 6
    assert "choose one source" in result.stderr
