"""Exported files as a demanding user feeds them: odd files, odd lines, every selection flag.

Issue 10, cases 3 and 4: selection flags used to be ignored for files and the bundled sample,
and odd files were dropped silently or ended in a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import BASE_TIME, qa_run, write_jsonl

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.ingest.syncer import SyncPlan, plan_sync
from tracetune.sync.langsmith import file_source
from tracetune.sync.langsmith.file_source import RunFileSource, RunFilters
from tracetune.sync.langsmith.sources import BUNDLED_SAMPLE

TRACETUNE = str(Path(sys.executable).with_name("tracetune"))
SAMPLE_FEEDBACK = BUNDLED_SAMPLE.with_name("sample_feedback.jsonl")


def _tracetune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACETUNE, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _plan(path: Path, **filters: Any) -> SyncPlan:
    return plan_sync(RunFileSource(path, filters=RunFilters(**filters)), since=None)


def _ids(plan: SyncPlan) -> list[str]:
    return [task.run_id for task in plan.tasks]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- odd files and odd lines (case 4) -------------------------------------------------------


def test_a_json_array_of_runs_is_read_like_jsonl(tmp_path: Path) -> None:
    runs = [qa_run(i) for i in range(3)]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(runs, indent=2))
    assert _ids(_plan(path)) == [r["id"] for r in runs]


def test_a_binary_file_is_one_clear_error_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(InvalidInputError, match=r"no LangSmith run: \d+ lines read, none is one"):
        _plan(path)


def test_a_pretty_printed_object_is_not_taken_for_runs(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(qa_run(0), indent=2))
    with pytest.raises(InvalidInputError, match="expected JSONL"):
        _plan(path)


def test_a_line_nested_1000_deep_is_skipped_and_the_valid_lines_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    lines = [json.dumps(qa_run(0)), '{"id": "deep", "inputs": ' + _nested(1000) + "}"]
    lines += [json.dumps({**qa_run(1), "outputs": {"answer": json.loads(_nested(150))}})]
    lines += [json.dumps(qa_run(2))]
    path.write_text("\n".join(lines) + "\n")
    plan = _plan(path)
    assert _ids(plan) == [qa_run(0)["id"], qa_run(2)["id"]]
    assert plan.tally.skipped == {"malformed run: nested deeper than 100 levels": 2}


def test_a_line_longer_than_the_limit_is_skipped_without_stopping_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_source, "MAX_LINE_BYTES", 1 << 20)
    big = {**qa_run(1), "outputs": {"answer": "x" * 3_000_000}}
    path = write_jsonl(tmp_path / "runs.jsonl", [qa_run(0), big, qa_run(2)])
    plan = _plan(path)
    assert _ids(plan) == [qa_run(0)["id"], qa_run(2)["id"]]
    assert plan.tally.skipped == {"malformed run: line longer than 1 MiB": 1}
    assert [s.run_id for s in plan.tally.skips] == ["runs.jsonl:2"]


def test_each_malformed_line_says_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    no_id = {k: v for k, v in qa_run(3).items() if k != "id"}
    lines = ["{not json", "[1, 2]", json.dumps(no_id), json.dumps({**qa_run(4), "id": ""})]
    path.write_text("\n".join([json.dumps(qa_run(0)), *lines]) + "\n")
    skips = {s.run_id: s.reason for s in _plan(path).tally.skips}
    assert skips == {
        "runs.jsonl:2": "malformed run: not valid JSON",
        "runs.jsonl:3": "malformed run: not a JSON object",
        "runs.jsonl:4": "malformed run: no id",
        "runs.jsonl:5": "malformed run: no id",
    }


def test_a_directory_or_a_missing_file_is_one_line_with_its_own_exit_code(tmp_path: Path) -> None:
    directory = _tracetune("sync", "--file", str(tmp_path), "--dry-run")
    assert directory.returncode == 6
    assert "is a directory" in directory.stderr and "Traceback" not in directory.stderr
    missing = _tracetune("sync", "--file", str(tmp_path / "nope.jsonl"), "--dry-run")
    assert missing.returncode == 5 and "does not exist" in missing.stderr
    binary = tmp_path / "b.bin"
    binary.write_bytes(os.urandom(3000).replace(b"\n", b" "))
    unreadable = _tracetune("sync", "--file", str(binary), "--dry-run")
    assert unreadable.returncode == 6
    assert unreadable.stderr.count("\n") == 1 and "holds no LangSmith run" in unreadable.stderr


# --- selection flags on files and the bundled sample (case 3) ------------------------------


def _selection_file(tmp_path: Path) -> Path:
    runs = []
    for i in range(6):
        run = qa_run(i * 60)  # one an hour from BASE_TIME
        run["tags"] = ["prod", "beta"] if i % 2 else ["prod"]
        run["extra"] = {"metadata": {"tier": "free" if i < 3 else "pro"}}
        run["feedback"] = [{"key": "user_score", "score": i % 3 - 1}]
        runs.append(run)
    runs[5]["error"] = "Timeout"
    return write_jsonl(tmp_path / "runs.jsonl", runs)


def _hour(i: int) -> datetime:
    return BASE_TIME + timedelta(hours=i)


def test_time_window_limit_tags_metadata_feedback_and_errors_apply_to_files(
    tmp_path: Path,
) -> None:
    path = _selection_file(tmp_path)
    ids = [qa_run(i * 60)["id"] for i in range(6)]
    assert _ids(_plan(path)) == ids[:5]  # the failed run is skipped with its reason
    assert _ids(_plan(path, start_time=_hour(2))) == ids[2:5]
    assert _ids(_plan(path, start_time=datetime(2099, 1, 1, tzinfo=UTC))) == []
    assert _ids(_plan(path, end_time=_hour(2))) == ids[:2]
    assert _ids(_plan(path, limit=2)) == ids[4:5]  # the newest two; the newest failed
    assert _ids(_plan(path, tags=("beta",))) == [ids[1], ids[3]]
    assert _ids(_plan(path, metadata={"tier": "pro"})) == ids[3:5]
    assert _ids(_plan(path, feedback_key="user_score", feedback_min_score=1)) == [ids[2]]
    only_failed = _plan(path, errors_only=True)
    assert only_failed.tally.fetched == 1
    assert only_failed.tally.skipped == {"run failed with an error": 1}


def test_a_selection_gets_its_own_watermark_key_and_the_default_keeps_the_plain_one(
    tmp_path: Path,
) -> None:
    path = _selection_file(tmp_path)
    plain = RunFileSource(path).key
    assert plain.count(":") == 1
    assert RunFileSource(path, filters=RunFilters(limit=3)).key == plain
    tagged = RunFileSource(path, filters=RunFilters(tags=("beta",))).key
    assert tagged.startswith(plain + ":") and tagged != RunFileSource(path, run_type="llm").key


def test_the_bundled_sample_honours_selection_flags() -> None:
    limited = _tracetune("sync", "--dry-run", "--json", "--limit", "2")
    assert limited.returncode == 0, limited.stderr
    assert len([ln for ln in limited.stdout.splitlines() if '"data"' in ln]) == 2
    future = _tracetune("sync", "--dry-run", "--json", "--since", "2099-01-01")
    assert future.returncode == 0 and future.stdout == ""
    source = RunFileSource(BUNDLED_SAMPLE, SAMPLE_FEEDBACK)
    every = plan_sync(source, since=None)
    liked = plan_sync(
        RunFileSource(
            BUNDLED_SAMPLE, SAMPLE_FEEDBACK, filters=RunFilters(feedback_key="user_score")
        ),
        since=None,
    )
    assert 0 < len(liked.tasks) < len(every.tasks)
    assert all(any(f["key"] == "user_score" for f in t.data["feedback"]) for t in liked.tasks)


def test_flags_a_source_cannot_apply_are_refused_with_one_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "runs.jsonl", [qa_run(0)])
    query = _tracetune("sync", "--file", str(path), "--dry-run", "--filter", "gt(latency, 5)")
    assert query.returncode == 6 and "--filter is LangSmith's own query language" in query.stderr
    sample = _tracetune("sync", "--dry-run", "--filter", "gt(latency, 5)")
    assert sample.returncode == 6
    dataset = _tracetune("sync", "--dataset", "docs", "--tag", "prod", "--limit", "3", "--dry-run")
    assert dataset.returncode == 6
    assert "--tag, --limit select runs; --dataset reads every example" in dataset.stderr
    alone = _tracetune("sync", "--file", str(path), "--dry-run", "--feedback-min", "1")
    assert alone.returncode == 6 and "--feedback-min needs --feedback-key" in alone.stderr
