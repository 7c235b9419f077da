"""Session fixtures: one real Label Studio and one real Redis for the whole test session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis
from label_studio_sdk import LabelStudio

from tracetune.sync.stack.servers import (
    LabelStudioServer,
    RedisServer,
    free_port,
    start_label_studio,
    start_redis,
)


@pytest.fixture(scope="session")
def label_studio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    data_dir = tmp_path_factory.mktemp("label-studio")
    server = start_label_studio(
        data_dir=data_dir,
        port=free_port(),
        username="admin@tracetune.test",
        password=secrets.token_hex(12),
        token=secrets.token_hex(20),
        log_path=data_dir / "label-studio.log",
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def label_studio(label_studio_server: LabelStudioServer) -> LabelStudio:
    """An SDK client authenticated against the session's Label Studio."""
    return LabelStudio(
        base_url=label_studio_server.url, api_key=label_studio_server.token, timeout=300
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(free_port(), tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session's Redis, flushed before each test so tests never see each other's state."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    client.close()


@pytest.fixture
def project_title(request: pytest.FixtureRequest) -> str:
    """A Label Studio project title unique to the test."""
    return f"tt {request.node.name[:40]} {secrets.token_hex(3)}"
