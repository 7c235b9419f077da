"""Shared fixtures live in `tests/plugins/`, one module per real server or stand-in."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [
    "plugins.servers",
    "plugins.langsmith_standin",
    "plugins.openai_standin",
    "plugins.rq_worker",
    "plugins.backend_server",
]


@pytest.fixture(scope="session", autouse=True)
def away_from_the_checkouts_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`Settings` reads `.tracetune/stack.env` and `.env` from the working directory, and in a
    checkout where `make demo` ran, the first holds the running demo stack's credentials: the
    tests (and the commands they start) run from an empty folder so they never pick them up."""
    previous = Path.cwd()
    empty = tmp_path_factory.mktemp("cwd")
    os.chdir(empty)
    yield empty
    os.chdir(previous)
