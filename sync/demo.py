"""`tracetune demo`: the main job end to end on embedded defaults, then where to look.

Starts the local stack, syncs the bundled sample traces into a Label Studio project, and prints
the URL and login so a person can start reviewing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from tracetune.sync import stack
from tracetune.sync.label_studio import LabelStudioGateway
from tracetune.sync.settings import Settings
from tracetune.sync.sources import BUNDLED_SAMPLE, RunFileSource
from tracetune.sync.sync_state import SyncStore, redis_client
from tracetune.sync.syncer import SyncReport, run_sync

DEMO_PROJECT = "tracetune demo: docs assistant"


@dataclass
class DemoResult:
    label_studio_url: str
    username: str
    password: str
    report: SyncReport


def stack_settings(state: stack.StackState) -> Settings:
    """Settings pointing at the services of a running local stack."""
    return Settings(
        label_studio_url=state.services["label_studio"].url,
        label_studio_api_key=SecretStr(state.token),
        redis_url=state.services["redis"].url,
    )


def run_demo(state_dir: Path, ports: stack.StackPorts, report: Callable[[str], None]) -> DemoResult:
    state = stack.up(state_dir, ports, report=report)
    settings = stack_settings(state)
    source = RunFileSource(BUNDLED_SAMPLE, BUNDLED_SAMPLE.with_name("sample_feedback.jsonl"))
    report(f"syncing the bundled sample traces into {DEMO_PROJECT!r}")
    sync_report = run_sync(
        source,
        LabelStudioGateway(settings),
        DEMO_PROJECT,
        state=SyncStore(redis_client(settings.redis_url), settings.label_studio_url),
    )
    return DemoResult(settings.label_studio_url, state.username, state.password, sync_report)
