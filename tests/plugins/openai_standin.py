"""The OpenAI files + fine-tuning stand-in, served once per session on a loopback port."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from standins.openai_api import OpenAIState, create_app
from werkzeug.serving import make_server

from tracetune.sync.stack.servers import free_port


@dataclass
class OpenAIStandin:
    base_url: str
    api_key: str
    state: OpenAIState


@pytest.fixture(scope="session")
def openai_standin_server() -> Iterator[OpenAIStandin]:
    state = OpenAIState(api_key=f"sk-test-{secrets.token_hex(8)}")
    port = free_port()
    server = make_server("127.0.0.1", port, create_app(state), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield OpenAIStandin(f"http://127.0.0.1:{port}/v1", state.api_key, state)
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def openai_api(openai_standin_server: OpenAIStandin) -> OpenAIStandin:
    """The session's stand-in with no files, jobs or recorded requests."""
    openai_standin_server.state.reset()
    return openai_standin_server
