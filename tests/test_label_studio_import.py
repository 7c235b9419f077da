"""Imports sent pre-encoded through the SDK's HTTP client, against the real Label Studio.

What Label Studio stores must be what the SDK's own `projects.import_tasks` would have sent,
failures must map to the same one-line errors, and a payload orjson cannot write must take
the SDK's own path.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from label_studio_sdk import LabelStudio

from tracetune.sync.errors import InvalidInputError, NotFoundError
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.label_studio.quick_ack import quick_ack_transport
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import LabelStudioServer

pytestmark = pytest.mark.integration


def _gateway(server: LabelStudioServer) -> LabelStudioGateway:
    return LabelStudioGateway(
        Settings(label_studio_url=server.url, label_studio_api_key=server.token)  # type: ignore[arg-type]
    )


def _stored(client: LabelStudio, project_id: int) -> list[dict[str, Any]]:
    tasks = client.tasks.list(project=project_id, page_size=100, fields="all")
    return sorted((dict(t.data) for t in tasks), key=lambda data: str(data["run_id"]))


def _tasks() -> list[dict[str, Any]]:
    return [
        {
            "run_id": f"run-{i}",
            "prompt": "Où est la facturation ? 请 🙂",
            "answer": 'Settings → "Billing"\n\ttab',
            "metadata": {"score": 0.1 + i, "big": 2**53 + i, "ok": True, "none": None},
            "messages": [{"role": "user", "content": "x" * 300}],
            "start_time": datetime(2026, 11, 3, 9, 30, i, 440749, tzinfo=UTC),
            "tags": {"prod"},
        }
        for i in range(3)
    ]


def test_imported_tasks_hold_what_the_sdk_would_have_sent(
    label_studio_server: LabelStudioServer, label_studio: LabelStudio, project_title: str
) -> None:
    ours = label_studio.projects.create(title=f"{project_title[:40]} a")
    sdk = label_studio.projects.create(title=f"{project_title[:40]} b")

    assert _gateway(label_studio_server).import_tasks(ours.id, _tasks()) == 3
    label_studio.projects.import_tasks(id=sdk.id, request=[{"data": t} for t in _tasks()])

    stored = _stored(label_studio, ours.id)
    assert stored == _stored(label_studio, sdk.id)
    assert stored[0]["start_time"] == "2026-11-03T09:30:00.440749Z"
    assert stored[0]["tags"] == ["prod"]


def test_a_payload_orjson_refuses_takes_the_sdks_own_path(
    label_studio_server: LabelStudioServer, label_studio: LabelStudio, project_title: str
) -> None:
    """Text with a lone surrogate: orjson refuses it, and so, the same way, does the SDK."""
    project = label_studio.projects.create(title=project_title)
    bad = [{"run_id": "run-bad", "prompt": "broken \udcff byte"}]
    with pytest.raises(UnicodeEncodeError):
        label_studio.projects.import_tasks(id=project.id, request=[{"data": t} for t in bad])
    with pytest.raises(UnicodeEncodeError):
        _gateway(label_studio_server).import_tasks(project.id, bad)
    assert label_studio.projects.get(id=project.id).task_number == 0


def test_import_failures_are_our_one_line_errors(
    label_studio_server: LabelStudioServer, label_studio: LabelStudio, project_title: str
) -> None:
    gateway = _gateway(label_studio_server)
    missing = max(p.id for p in label_studio.projects.list()) + 1000
    with pytest.raises(NotFoundError, match="not found"):
        gateway.import_tasks(missing, [{"run_id": "run-1"}])
    project = label_studio.projects.create(title=project_title)
    with pytest.raises(InvalidInputError, match="Label Studio rejected the request"):
        gateway.import_tasks(project.id, ["not an object"])  # type: ignore[list-item]


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers each request with its path, headers and body in separate writes."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = self.path.encode() + b":" + body
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.flush()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.protocol_version = "HTTP/1.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_quick_ack_transport_keeps_connections_and_bodies_intact(echo_server: str) -> None:
    with httpx.Client(transport=quick_ack_transport()) as client:
        answers = [client.post(f"{echo_server}/r{i}", content=b"x" * 70_000) for i in range(5)]
    assert [a.content for a in answers] == [f"/r{i}:".encode() + b"x" * 70_000 for i in range(5)]
