"""The LangSmith API stand-in, once per session, and the environment that points the SDK at it.

`langsmith_env` also resets the SDK's process-wide caches: `langsmith` reads its environment
variables once (`utils.get_env_var` and the `LANGSMITH_*` copy it puts in every run's
metadata are `lru_cache`s) and keeps one tracing client per process, so without the reset a
test would trace with whatever the first test configured.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import langsmith
import pytest
from langsmith import env as ls_env
from langsmith import run_trees
from langsmith import utils as ls_utils
from standins.langsmith import LangSmithStandIn

#: SDK variables that would override or redirect what `langsmith_env` sets.
_CONFLICTING = (
    "LANGSMITH_TRACING_V2",
    "LANGCHAIN_TRACING_V2",
    "LANGCHAIN_TRACING",
    "LANGCHAIN_ENDPOINT",
    "LANGCHAIN_API_KEY",
    "LANGCHAIN_PROJECT",
    "LANGSMITH_RUNS_ENDPOINTS",
    "LANGSMITH_WORKSPACE_ID",
    "LANGSMITH_PROFILE",
    "LANGSMITH_AGENT_ID",
    "LANGSMITH_AGENT_ENVIRONMENT",
)


def _reset_sdk_caches() -> None:
    ls_utils.get_env_var.cache_clear()
    ls_utils.get_tracer_project.cache_clear()
    ls_env.get_langchain_env_var_metadata.cache_clear()  # LANGSMITH_* copied into metadata


@pytest.fixture(scope="session")
def langsmith_standin() -> Iterator[LangSmithStandIn]:
    """One stand-in for the session; tests keep apart by using their own projects."""
    standin = LangSmithStandIn(api_key=f"lsv2_pt_standin_{secrets.token_hex(12)}")
    yield standin
    standin.stop()


@pytest.fixture
def langsmith_project(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """A factory of project names unique to the test: `langsmith_project("chat")`."""

    def make(label: str = "") -> str:
        parts = ["tt", request.node.name[:40], label, uuid.uuid4().hex[:8]]
        return "-".join(part for part in parts if part)

    return make


@pytest.fixture
def langsmith_env(
    langsmith_standin: LangSmithStandIn,
    langsmith_project: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, str]]:
    """Tracing on, into the stand-in, under a fresh `LANGSMITH_PROJECT`.

    Returns the variables it set, to pass on to subprocesses. Runs still queued in the
    SDK's background thread are flushed before the test's environment is undone.
    """
    env = {
        "LANGSMITH_ENDPOINT": langsmith_standin.url,
        "LANGSMITH_API_KEY": langsmith_standin.api_key,
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_PROJECT": langsmith_project("env"),
    }
    for name in _CONFLICTING:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(run_trees, "_CLIENT", None)
    _reset_sdk_caches()
    yield env
    client = run_trees._CLIENT
    if isinstance(client, langsmith.Client):
        client.flush()
    _reset_sdk_caches()


@pytest.fixture(scope="session")
def large_output_run(langsmith_standin: LangSmithStandIn) -> dict:
    """A run whose output is about 1 MB of text, as `list_runs` returns it (dumped to JSON).

    Made at test time rather than committed under tests/fixtures/runs, to keep the
    repository small; it goes through the real SDK like the committed fixtures.
    """
    client = langsmith.Client(api_url=langsmith_standin.url, api_key=langsmith_standin.api_key)
    project = f"tt-large-output-{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4()
    started = datetime.now(UTC)
    text = ("The export job streams rows in pages of 500. " * 23_000)[:1_000_000]
    client.create_run(
        name="answer_question",
        run_type="chain",
        id=run_id,
        inputs={"question": "Paste the whole export log, please."},
        outputs={"answer": text},
        project_name=project,
        start_time=started,
        end_time=started + timedelta(seconds=3),
        extra={"metadata": {"fixture_case": "1 MB output"}},
    )
    client.flush()
    (run,) = client.list_runs(project_name=project, run_ids=[run_id])
    return run.model_dump(mode="json")
