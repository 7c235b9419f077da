"""A backend worker that cannot predict says so, and malformed requests never break one
(issue 10, cases 5 and 6).

The campaign left one gunicorn worker with a half-initialised `detect_secrets` (imported lazily
by the secrets signal) answering 500 to most predictions while `/health` said UP.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections import Counter
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from flask import Flask
from plugins.backend_server import BackendServer, chat_data

from tracetune.backend.server.app import create_app
from tracetune.backend.server.serve import retire_if_broken
from tracetune.backend.services import Backend
from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.settings import Settings
from tracetune.sync.stack.servers import free_port

CHAT = render_label_config(ReviewKind.CHAT)


@pytest.fixture(scope="module")
def app(backend: Backend) -> Flask:
    return create_app(backend.settings, backend=backend, warm_up=False)


def _break_secrets(monkeypatch: pytest.MonkeyPatch, backend: Backend) -> None:
    def broken(texts: Any) -> Any:
        raise ImportError("cannot import name 'Plugin' from partially initialized module")

    monkeypatch.setattr(backend.predictor.signals["secrets"], "compute", broken)


def test_health_is_503_naming_the_signal_that_cannot_run(
    app: Flask, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.test_client() as client:
        assert client.get("/health").status_code == 200
        _break_secrets(monkeypatch, backend)
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json["status"] == "DOWN"
        assert response.json["cannot_predict"] == {
            "signal secrets": "ImportError: cannot import name 'Plugin' from partially "
            "initialized module"
        }
        monkeypatch.undo()
        assert client.get("/health").json["status"] == "UP"


def test_health_is_503_when_redis_is_gone() -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    cold = Backend.create(settings)
    with create_app(settings, backend=cold, warm_up=False).test_client() as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert set(response.json["cannot_predict"]) == {"redis"}


def test_a_body_nested_too_deep_is_a_400_not_a_500(app: Flask) -> None:
    with app.test_client() as client:
        deep = '{"tasks": ' + "[" * 5000 + "]" * 5000 + "}"
        response = client.post("/predict", data=deep, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == "the request body is nested too deeply"


def _worker(app: Flask) -> SimpleNamespace:
    """What gunicorn hands its `post_request` hook: the worker, with its app and log."""
    return SimpleNamespace(wsgi=app, log=logging.getLogger("test.worker"), pid=1, alive=True)


def test_a_worker_whose_signals_broke_after_serving_is_retired(
    app: Flask, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(app)
    retire_if_broken(worker, None, {}, SimpleNamespace(status_code=500))
    assert worker.alive  # a 500 of its own (a bug in one request) is no reason
    _break_secrets(monkeypatch, backend)
    retire_if_broken(worker, None, {}, SimpleNamespace(status_code=200))
    assert worker.alive
    retire_if_broken(worker, None, {}, SimpleNamespace(status_code=500))
    assert not worker.alive


def test_a_worker_broken_from_the_start_is_not_restarted_forever(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_secrets(monkeypatch, backend)
    broken_app = create_app(backend.settings, backend=backend, warm_up=False)
    assert set(broken_app.extensions["tracetune_problems_at_start"]) == {"signal secrets"}
    worker = _worker(broken_app)
    retire_if_broken(worker, None, {}, SimpleNamespace(status_code=500))
    assert worker.alive


def test_what_broke_a_lazily_importing_worker_no_longer_can() -> None:
    """The first use of the secrets signal deep in a thread's stack used to leave
    detect-secrets half-imported for good; the server now imports it before serving."""
    code = """
import sys
from tracetune.backend.server import app  # what each gunicorn worker imports first
from tracetune.backend.signals.secrets import find_secrets

def deep(n):
    return deep(n - 1) if n else find_secrets("password = 'hunter2hunter2'")

for depth in range(sys.getrecursionlimit() - 40, 0, -20):  # first use at many stack depths
    try:
        deep(depth)
    except (RecursionError, ImportError):
        pass
print(len(find_secrets("token: ghp_" + "a1B2" * 9)))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


MALFORMED: list[tuple[str, bytes]] = [
    ("not json", b"{oops"),
    ("nested 5000 deep", b'{"tasks": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("tasks not a list", b'{"tasks": 3, "project": "1.1"}'),
    ("task without id", b'{"tasks": [{"data": {}}], "project": "1.1"}'),
    ("a list body", b"[1, 2, 3]"),
    ("number as text", b'{"tasks": [{"id": 1, "data": {"prompt": 1, "answer": 2}}]}'),
]


@pytest.mark.integration
def test_malformed_requests_among_ten_clients_cost_well_formed_ones_nothing(
    backend_server: BackendServer,
) -> None:
    url, auth = backend_server.url, backend_server.auth
    statuses: Counter[str] = Counter()
    failures: list[str] = []

    def client(number: int) -> None:
        with httpx.Client(base_url=url, auth=auth, timeout=120) as http:
            for i in range(10):
                name, raw = MALFORMED[(number + i) % len(MALFORMED)]
                bad = http.post(
                    "/predict", content=raw, headers={"Content-Type": "application/json"}
                )
                statuses[f"malformed {bad.status_code // 100}xx"] += 1
                if bad.status_code >= 500:
                    failures.append(f"{name}: {bad.status_code} {bad.text[:200]}")
                data = chat_data(
                    f"soak-{number}-{i}", f"How do I reset key {number}-{i}?", "Go to Settings."
                )
                good = http.post(
                    "/predict",
                    json={
                        "tasks": [{"id": i, "data": data}],
                        "project": "1.1",
                        "label_config": CHAT,
                    },
                )
                ok = good.status_code == 200 and len(good.json()["results"]) == 1
                statuses["well-formed ok" if ok else "well-formed failed"] += 1
                if not ok:
                    failures.append(f"well-formed: {good.status_code} {good.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert statuses == {"well-formed ok": 100, "malformed 4xx": 100}
    assert httpx.get(f"{url}/health", auth=auth, timeout=10).json()["status"] == "UP"
