"""Servers a benchmark needs, started fresh for its run and stopped at the end."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from label_studio_sdk import LabelStudio

from tracetune.sync.stack.servers import (
    LabelStudioServer,
    RedisServer,
    free_port,
    start_label_studio,
    start_redis,
)


@contextmanager
def label_studio_and_redis() -> Iterator[tuple[LabelStudioServer, RedisServer, LabelStudio]]:
    with tempfile.TemporaryDirectory(prefix="tracetune-bench-") as tmp:
        root = Path(tmp)
        ls = start_label_studio(
            data_dir=root / "label-studio",
            port=free_port(),
            username="bench@tracetune.test",
            password=secrets.token_hex(12),
            token=secrets.token_hex(20),
            log_path=root / "label-studio.log",
        )
        redis = start_redis(free_port(), root / "redis")
        try:
            yield ls, redis, LabelStudio(base_url=ls.url, api_key=ls.token, timeout=600)
        finally:
            redis.stop()
            ls.stop()
