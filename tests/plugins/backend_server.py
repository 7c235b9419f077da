"""The ML backend for tests: in process (Flask test client) and as a real gunicorn server.

The gunicorn server listens on loopback, which the session's Label Studio reaches because
`start_label_studio` lifts its SSRF ban for 127.0.0.0/8 only.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tracetune.backend.services import Backend
from tracetune.sync.conversation import ContextDoc, Conversation, Message
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import LabelStudioServer, RedisServer, free_port, wait_until
from tracetune.sync.task_data import conversation_task, pair_task

#: The backend's Redis database: other tests flush everything between tests, which the
#: backend survives (it retrains and re-embeds on demand); a database of its own keeps its
#: keys out of the way of theirs.
BACKEND_DB = 3


@dataclass
class BackendServer:
    url: str
    user: str
    password: str
    redis_url: str
    log_path: Path

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.password)


@pytest.fixture(scope="session")
def backend_redis_url(redis_server: RedisServer) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{BACKEND_DB}"


@pytest.fixture(scope="session")
def backend(backend_redis_url: str) -> Backend:
    """One in-process backend (model loaded once) for the session."""
    return Backend.create(Settings(redis_url=backend_redis_url))


@pytest.fixture(scope="session")
def backend_server(
    backend_redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    label_studio_server: LabelStudioServer,
) -> Iterator[BackendServer]:
    """`tracetune backend` (gunicorn, one worker) on a free loopback port, with basic auth,
    and the session's Label Studio credentials, with which it removes its stale predictions."""
    port = free_port()
    user, password = "labelstudio", secrets.token_hex(8)
    log_path = tmp_path_factory.mktemp("backend") / "backend.log"
    env = {
        **os.environ,
        "REDIS_URL": backend_redis_url,
        "BASIC_AUTH_USER": user,
        "BASIC_AUTH_PASS": password,
        "TRACETUNE_BACKEND_URL": f"http://127.0.0.1:{port}",
        "TRACETUNE_BACKEND_WORKERS": "1",
        "HF_HUB_OFFLINE": "1",
        "LABEL_STUDIO_URL": label_studio_server.url,
        "LABEL_STUDIO_API_KEY": label_studio_server.token,
    }
    command = [sys.executable, "-m", "tracetune.sync.cli", "backend"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # /health is behind basic auth like every endpoint: poll it with the credentials,
        # then let the worker finish loading its model, so tests start from a warm backend.
        wait_until(f"http://{user}:{password}@127.0.0.1:{port}/health", 120, process)
        deadline = time.monotonic() + 180
        while not httpx.get(f"{url}/health", auth=(user, password), timeout=5).json()[
            "model_ready"
        ]:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the backend did not load its model; see {log_path}")
            time.sleep(0.5)
        yield BackendServer(url, user, password, backend_redis_url, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def chat_data(run_id: str, prompt: str, answer: str, system: str | None = None) -> dict[str, Any]:
    """Task data exactly as the sync writes it for a chat review."""
    messages = [Message(role="system", content=system)] if system else []
    messages += [Message(role="user", content=prompt), Message(role="assistant", content=answer)]
    conversation = Conversation(run_id=run_id, messages=messages, source_shape="test")
    return conversation_task(conversation, ReviewKind.CHAT)


def rag_data(run_id: str, question: str, answer: str, docs: list[str]) -> dict[str, Any]:
    turns = [Message(role="user", content=question), Message(role="assistant", content=answer)]
    conversation = Conversation(
        run_id=run_id,
        messages=turns,
        context_docs=[ContextDoc(content=d, source=f"doc{i}") for i, d in enumerate(docs)],
        source_shape="test",
    )
    return conversation_task(conversation, ReviewKind.RAG)


def pair_data(prompt: str, answer_a: str, answer_b: str) -> dict[str, Any]:
    def one(run_id: str, answer: str) -> Conversation:
        messages = [Message(role="user", content=prompt), Message(role="assistant", content=answer)]
        return Conversation(run_id=run_id, messages=messages, source_shape="test")

    return pair_task(one("a", answer_a), one("b", answer_b))
