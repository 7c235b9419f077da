"""Export from the real Label Studio: SDK-made annotations, files checked line by line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from export_projects import SYSTEM, build_chat_project, build_preference_project
from label_studio_sdk import LabelStudio

from tracetune.sync.errors import NotFoundError
from tracetune.sync.export.filters import ExportFilters, PiiPolicy
from tracetune.sync.export.run import ExportRequest, run_export
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import LabelStudioServer

pytestmark = pytest.mark.integration


def _settings(server: LabelStudioServer, tmp_path: Path) -> Settings:
    return Settings(
        label_studio_url=server.url,
        label_studio_api_key=server.token,  # type: ignore[arg-type]
        tracetune_export_dir=tmp_path / "exports",
        tracetune_page_size=5,  # several pages even for a small project
    )


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _chat(question: str, answer: str) -> list[dict[str, Any]]:
    return [
        SYSTEM,
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]


def _pair(question: str, chosen: str, rejected: str) -> dict[str, Any]:
    return {
        "input": {"messages": [SYSTEM, {"role": "user", "content": question}]},
        "preferred_output": [{"role": "assistant", "content": chosen}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


def test_chat_review_export_matches_the_expected_files(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    project_title: str,
) -> None:
    project = build_chat_project(label_studio, project_title)
    filters = ExportFilters(pii=PiiPolicy.REDACT, max_scores={"toxicity": 0.5}, dedupe=True)
    request = ExportRequest(project=project_title, filters=filters, validation_fraction=0.0)

    result = run_export(_settings(label_studio_server, tmp_path), request)

    assert _jsonl(result.path / "openai_sft.train.jsonl") == [
        {"messages": _chat("How do I reset my password?", "Use the reset link on the login page.")},
        {"messages": _chat("Where are invoices?", "Open Billing, then Invoices.")},
        {
            "messages": _chat(
                "How do I invite a teammate?", "Open Team, click Invite, enter the email."
            )
        },
        {"messages": _chat("How do I delete my account?", "Open Profile, then Delete account.")},
        {"messages": _chat("Who can help me with billing?", "Write to [EMAIL] for billing.")},
    ]
    assert _jsonl(result.path / "openai_preference.train.jsonl") == [
        _pair("Where are invoices?", "Open Billing, then Invoices.", "Somewhere in the app."),
        _pair(
            "How do I reset my password?", "Use the reset link on the login page.", "Call support."
        ),
        _pair(
            "How do I invite a teammate?",
            "Open Team, click Invite, enter the email.",
            "Email them.",
        ),
        _pair(
            "How do I delete my account?", "Open Profile, then Delete account.", "Just stop paying."
        ),
    ]
    trl_sft = _jsonl(result.path / "trl_sft.train.jsonl")
    assert trl_sft == [
        {"messages": row["messages"]} for row in _jsonl(result.path / "openai_sft.train.jsonl")
    ]
    assert pq.read_table(result.path / "trl_sft.train.parquet").to_pylist() == trl_sft
    trl_pairs = pq.read_table(result.path / "trl_preference.train.parquet").to_pylist()
    assert trl_pairs[1] == {
        "prompt": [SYSTEM, {"role": "user", "content": "How do I reset my password?"}],
        "chosen": [{"role": "assistant", "content": "Use the reset link on the login page."}],
        "rejected": [{"role": "assistant", "content": "Call support."}],
    }
    assert not list(result.path.glob("*validation*"))

    manifest = json.loads((result.path / "manifest.json").read_text())
    t, a = project.tasks, project.annotations
    assert manifest["project"]["id"] == project.id
    assert manifest["counts"]["by_decision"] == {
        "accepted": 5,
        "cancelled": 1,
        "edited": 3,
        "rejected": 2,
        "unreviewed": 1,
    }
    assert manifest["counts"]["excluded_by_reason"] == {
        "cancelled": 1,
        "near_duplicate": 1,
        "pii_unredactable": 1,
        "rejected": 2,
        "score_over_threshold:toxicity": 1,
        "unreviewed": 1,
    }
    assert manifest["counts"]["by_rule"] == {
        "ground_truth": 1,
        "majority": 1,
        "none": 2,
        "single": 8,
    }
    assert manifest["counts"]["rejected_kept_as_rejected_side"] == 1
    sft_lineage = [r for r in manifest["lineage"] if r["set"] == "sft.train"]
    assert [(r["task_id"], r["annotation_id"], r["run_ids"]) for r in sft_lineage] == [
        (t[key], a[key], [f"run-{key}"])
        for key in ("accepted", "edited", "majority", "ground_truth", "pii")
    ]
    paired = next(r for r in manifest["lineage"] if r["task_id"] == t["rejected_paired"])
    assert paired["chosen_from_task"] == t["accepted"]
    assert [r["rule"] for r in sft_lineage] == [
        "single",
        "single",
        "majority",
        "ground_truth",
        "single",
    ]
    for name, info in manifest["files"].items():
        assert info["bytes"] == (result.path / name).stat().st_size
    # Five SFT examples are fewer than OpenAI's minimum of ten: the manifest says so.
    assert not manifest["validation"]["openai_sft.train.jsonl"]["ok"]
    assert "too_few_examples" in manifest["validation"]["openai_sft.train.jsonl"]["summary"]
    assert manifest["tokens"]["openai_sft.train.jsonl"]["examples"] == 5


def test_preference_project_export(
    tmp_path: Path,
    label_studio_server: LabelStudioServer,
    label_studio: LabelStudio,
    project_title: str,
) -> None:
    project = build_preference_project(label_studio, project_title)
    result = run_export(
        _settings(label_studio_server, tmp_path),
        ExportRequest(project=str(project.id), validation_fraction=0.0, formats=("openai",)),
    )

    assert _jsonl(result.path / "openai_preference.train.jsonl") == [
        _pair("Summarise the release.", "Faster exports.", "Stuff changed."),
        _pair("Name the plan.", "The Pro plan.", "It is unclear."),
    ]
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert [r["run_ids"] for r in manifest["lineage"]] == [["pa1", "pb1"], ["pa2", "pb2"]]
    assert sorted(manifest["files"]) == ["openai_preference.train.jsonl"]


def test_an_unknown_project_is_a_clear_error(
    tmp_path: Path, label_studio_server: LabelStudioServer
) -> None:
    with pytest.raises(NotFoundError, match="no Label Studio project titled 'nope nope'"):
        run_export(_settings(label_studio_server, tmp_path), ExportRequest(project="nope nope"))
