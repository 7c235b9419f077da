"""The v1 run dict built from v2 JSON is the one the SDK's `Run` model dumps, field for field.

The runs are the fixtures traced by the real SDKs, served by the stand-in and read through the
real v2 client, so the values (ids, RFC 3339 times, nested inputs) are the ones the sync sees.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langsmith import schemas
from pydantic import SecretStr, ValidationError
from standins.langsmith import LangSmithStandIn

from tracetune.sync.langsmith import run_dict as run_dict_module
from tracetune.sync.langsmith.client import make_client
from tracetune.sync.langsmith.run_dict import run_dict
from tracetune.sync.langsmith.run_query import (
    CHILD_FIELDS,
    EARLIEST,
    MODEL_CALL_FIELDS,
    ROOT_FIELDS,
)
from tracetune.sync.langsmith.runs_v2 import as_run_dict, selects, v1_fields
from tracetune.sync.langsmith.sources import run_as_dict
from tracetune.sync.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
RUN = "01a1a0bf-0048-7cf7-8f15-127495814b1b"
PARENT = "89a61043-3f44-4b69-88d9-aebebaa87252"


def _run_fixtures() -> list[Path]:
    """The fixture files that hold runs (not examples or feedback records)."""
    return [
        path
        for path in sorted(FIXTURES.glob("*.jsonl"))
        if "run_type" in json.loads(path.read_text().splitlines()[0])
    ]


def _through_the_model(fields: dict[str, Any]) -> dict[str, Any]:
    """What the sync built before: the SDK's model, dumped as JSON."""
    return run_as_dict(schemas.Run(**{k: v for k, v in fields.items() if v is not None}))


def _v2_pages(standin: LangSmithStandIn, project: str, names: tuple[str, ...]) -> Iterator[Any]:
    """Every run of the project as v2 JSON, read through the SDK's v2 client."""
    clients = make_client(
        Settings(langsmith_endpoint=standin.url, langsmith_api_key=SecretStr(standin.api_key))
    )
    project_id = str(clients.client.read_project(project_name=project).id)
    arguments: dict[str, Any] = {
        "project_ids": [project_id],
        "selects": selects(names),
        "min_start_time": EARLIEST,
        "page_size": 100,
    }
    while True:
        page = clients.api.runs.with_raw_response.query(**arguments).json()
        yield from page["items"]
        if not page.get("next_cursor"):
            return
        arguments["cursor"] = page["next_cursor"]


@pytest.fixture(scope="module")
def standin() -> Iterator[LangSmithStandIn]:
    """A stand-in of this module's own: other tests load the same fixtures, with the same ids."""
    with LangSmithStandIn(api_key=f"lsv2_pt_run_dict_{uuid.uuid4().hex}") as served:
        yield served


@pytest.fixture(scope="module")
def fixture_projects(standin: LangSmithStandIn) -> list[str]:
    """One stand-in project per fixture file, loaded once for the module."""
    projects = []
    for fixture in _run_fixtures():
        project = f"tt-run-dict-{fixture.stem}"
        standin.store.load_jsonl(fixture, project=project)
        projects.append(project)
    return projects


@pytest.mark.parametrize("names", [ROOT_FIELDS, CHILD_FIELDS, MODEL_CALL_FIELDS])
def test_runs_read_through_v2_become_the_models_dicts(
    standin: LangSmithStandIn,
    fixture_projects: list[str],
    monkeypatch: pytest.MonkeyPatch,
    names: tuple[str, ...],
) -> None:
    read = [run for p in fixture_projects for run in _v2_pages(standin, p, names)]
    assert len(read) > 100, "the fixtures hold runs of every traced shape"
    expected = [_through_the_model(v1_fields(run)) for run in read]
    # No run of the fixtures needs the model: the fast path builds every one of them.
    monkeypatch.setattr(run_dict_module, "schemas", SimpleNamespace(Run=_no_model))
    built = [as_run_dict(run) for run in read]
    for run, ours, theirs in zip(read, built, expected, strict=True):
        assert ours == theirs, run["id"]
        assert list(ours) == list(theirs), run["id"]


def _no_model(**fields: Any) -> None:
    raise AssertionError(f"the model was needed for {fields.get('id')}")


def _fields(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": RUN,
        "name": "answer_question",
        "run_type": "chain",
        "start_time": "2026-11-03T09:30:34.440749Z",
        "end_time": "2026-11-03T09:30:35Z",
        "inputs": {"question": "Where is billing?"},
        "outputs": {"answer": "Settings."},
        "extra": {"metadata": {"tier": "pro"}},
        "tags": ["prod"],
        "trace_id": RUN,
        "dotted_order": f"20261103T093034440749Z{RUN}",
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"start_time": "2026-11-03T09:30:34.440749", "end_time": "2026-11-03T09:30:35.000000"},
        {"start_time": "2026-11-03T11:30:34.5+02:00", "end_time": "2026-11-03 09:30:35+00:00"},
        {"start_time": "2026-11-03T09:30:34.000000Z", "end_time": None},
        {"trace_id": None, "dotted_order": None, "extra": None, "inputs": None, "tags": []},
        {"dotted_order": "  ", "parent_run_id": PARENT, "parent_run_ids": [PARENT]},
        {"status": "success", "error": "timed out", "outputs": None, "feedback_stats": {}},
        {"session_id": PARENT, "reference_example_id": PARENT},
        # Shapes the fast path leaves to the model, which converts them:
        {"id": RUN.upper(), "trace_id": RUN.replace("-", "")},
        {"start_time": 1_793_700_000, "end_time": "2026-11-03T09:30:35.1234567Z"},
        {"parent_run_ids": [PARENT.upper()], "tags": ("a", "b")},
        {"events": [{"name": "new_token"}]},
    ],
)
def test_each_value_is_written_as_the_model_writes_it(changes: dict[str, Any]) -> None:
    fields = _fields(**changes)
    assert run_dict(fields) == _through_the_model(fields)


@pytest.mark.parametrize(
    "changes",
    [{"id": None}, {"name": 7}, {"tags": ["a", 1]}, {"start_time": "yesterday"}, {"outputs": [1]}],
)
def test_what_the_model_refuses_is_still_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _through_the_model(_fields(**changes))
    with pytest.raises(ValidationError):
        run_dict(_fields(**changes))
