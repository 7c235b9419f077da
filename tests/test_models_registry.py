"""The model registry on a real MLflow SQLite store: versions, aliases, the promotion gate,
rollback as a stack of currents, and the audit trail."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tracetune.sync.errors import (
    InvalidInputError,
    NotFoundError,
    RefusedError,
    ServiceUnavailableError,
)
from tracetune.sync.models.references import ModelReference, local_reference, retirement_note
from tracetune.sync.models.registry import ModelRegistry
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import free_port


def _registry(tmp_path: Path, uri: str | None = None) -> ModelRegistry:
    settings = Settings(
        tracetune_state_dir=tmp_path,
        tracetune_registry_uri=uri or f"sqlite:///{tmp_path / 'registry.db'}",
        http_retries=0,
        http_timeout_s=3,
    )
    return ModelRegistry(settings)


def _endpoint(name: str) -> ModelReference:
    return ModelReference(kind="openai", model=name, base_url="http://127.0.0.1:9/v1")


def _evaluation(candidate: int, baseline: int, blockers: list[str]) -> dict:
    return {
        "eval_id": f"ev-{candidate}-{baseline}",
        "at": "2026-12-01T10:00:00+00:00",
        "candidate_version": candidate,
        "baseline_version": baseline,
        "blockers": blockers,
        "worse": bool(blockers),
        "headline": "test",
    }


def test_versions_get_aliases_and_the_history_knows_every_current(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    first = registry.register(_endpoint("model-a"), {"export_id": "x-1"}, "first", by="ana")
    second = registry.register(_endpoint("model-b"), by="ana")

    assert (first.version, second.version) == (1, 2)
    assert registry.alias_versions() == {"candidate": 2}
    assert registry.get("v1").lineage == {"export_id": "x-1"}

    registry.promote("1", reason="first model", by="ana")
    assert registry.alias_versions() == {"candidate": 2, "current": 1}
    registry.record_evaluation(2, "ev-2-1", _evaluation(2, 1, []))
    registry.promote("candidate", reason="better on held-out", by="ben")
    assert registry.alias_versions() == {"current": 2, "previous": 1}
    assert registry.get("current").reference.model == "model-b"

    event = registry.rollback(reason="complaints", by="cleo")
    assert (event.version, event.replaced) == (1, 2)
    assert registry.alias_versions() == {"current": 1}
    with pytest.raises(InvalidInputError, match="nothing to roll back to: v1 is the only"):
        registry.rollback(reason="again")

    actions = [(e.action, e.version, e.by) for e in registry.events()]
    assert actions == [
        ("registered", 1, "ana"),
        ("registered", 2, "ana"),
        ("promoted", 1, "ana"),
        ("evaluated", 2, registry.events()[3].by),
        ("promoted", 2, "ben"),
        ("rolled_back", 1, "cleo"),
    ]
    assert [v.aliases for v in registry.versions()] == [["current"], []]


def test_promotion_is_refused_without_or_against_an_evaluation_and_forcing_is_recorded(
    tmp_path: Path,
) -> None:
    registry = _registry(tmp_path)
    for name in ("base", "worse"):
        registry.register(_endpoint(name))
    registry.promote("1", reason="start")

    with pytest.raises(RefusedError, match="no evaluation of v2 against the current v1"):
        registry.promote("2", reason="trying")
    registry.record_evaluation(2, "ev-2-1", _evaluation(2, 1, ["reviewers win rate 0.10"]))
    with pytest.raises(RefusedError, match=r"not promoting v2: reviewers win rate 0\.10"):
        registry.promote("2", reason="trying again")
    assert registry.alias_versions()["current"] == 1

    forced = registry.promote("2", reason="hotfix", force=True, by="ops")
    assert forced.forced
    assert "forced over: reviewers win rate 0.10" in forced.reason
    refusals = [e for e in registry.events() if e.action == "promotion_refused"]
    assert [e.version for e in refusals] == [2, 2]
    with pytest.raises(InvalidInputError, match="v2 is already current"):
        registry.promote("current", reason="noop")


def test_an_interrupted_promotion_is_repaired_from_the_events(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    registry.register(_endpoint("a"))
    registry.register(_endpoint("b"))
    registry.promote("1", reason="start")
    registry.promote("2", reason="go", force=True)
    # The process died after the event, before the aliases moved:
    registry.client.set_registered_model_alias(registry.name, "current", "1")
    registry.client.delete_registered_model_alias(registry.name, "previous")

    assert registry.reconcile() == {"current": 2, "previous": 1}


def test_a_fine_tune_job_is_registered_once(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    first = registry.register(_endpoint("ft:a"), {"finetune_job": "ft-1"}, job_id="ft-1")
    again = registry.register(_endpoint("ft:a"), {"finetune_job": "ft-1"}, job_id="ft-1")

    assert again.version == first.version == 1
    assert len(registry.versions()) == 1


def test_unknown_versions_and_names_are_one_clear_error(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    with pytest.raises(NotFoundError, match="no model registered as 'tracetune-assistant'"):
        registry.get("current")
    registry.register(_endpoint("a"))
    with pytest.raises(NotFoundError, match="no current model"):
        registry.get("current")
    with pytest.raises(NotFoundError):
        registry.get("7")
    with pytest.raises(InvalidInputError, match="by number"):
        registry.get("latest")


def test_a_registry_that_is_down_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailableError) as failure:
        _registry(tmp_path, uri=f"http://user:hunter2@127.0.0.1:{free_port()}")
    assert "hunter2" not in str(failure.value)
    assert str(failure.value).startswith("cannot reach the model registry at http://***@127.0.0.1:")


def test_local_references_must_be_model_folders(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"neither config\.json nor adapter_config\.json"):
        local_reference(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    assert local_reference(tmp_path).model == str(tmp_path.resolve())


def test_openai_models_that_shut_down_carry_a_warning() -> None:
    gpt4o = ModelReference(kind="openai", model="ft:gpt-4o-mini-2024-07-18:org:docs:abc")
    assert "2027-01-14" in (retirement_note(gpt4o, date(2026, 12, 1)) or "")
    vllm = ModelReference(kind="openai", model="gpt-4o-mini", base_url="http://vllm:8000/v1")
    assert retirement_note(vllm) is None
    assert retirement_note(ModelReference(kind="openai", model="o4-mini")) is None


def test_processes_opening_a_new_sqlite_registry_at_once_all_succeed(tmp_path: Path) -> None:
    """A worker registering while the CLI reads: both create the tables of a fresh file."""
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    script = (
        "from tracetune.sync.models.registry import ModelRegistry\n"
        "from tracetune.sync.settings import Settings\n"
        f"print(len(ModelRegistry(Settings(tracetune_registry_uri={uri!r})).versions()))\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], [err for _, err in results]
    assert [out.strip() for out, _ in results] == ["0"] * 4
