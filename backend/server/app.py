"""The ML backend as Label Studio 1.23 calls it, on current Flask (application factory).

Endpoints: `GET /health` and `GET /` (fast, model loaded or not; 503 when this worker cannot
predict, naming what fails), `POST /setup`,
`POST /predict`, `POST /train`, `POST /webhook`, `GET /versions`, `GET /metrics`. Optional
HTTP basic auth (`BASIC_AUTH_USER` / `BASIC_AUTH_PASS`), which Label Studio's ML settings send.
Every error is JSON: `{"error": message, "status": code}`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from tracetune.backend.cache import key
from tracetune.backend.prediction import grounding
from tracetune.backend.prediction.label_targets import LabelTargets, read_targets
from tracetune.backend.server.annotations import learn_from_task, register_learning
from tracetune.backend.server.batch import read_batch
from tracetune.backend.server.prelabelling import prelabel
from tracetune.backend.server.protocol import (
    MalformedRequestError,
    OrjsonProvider,
    json_body,
    project_key,
    required_list,
)
from tracetune.backend.server.readiness import prediction_problems
from tracetune.backend.server.stale_predictions import StalePredictionRemover
from tracetune.backend.server.webhooks import WebhookDispatcher, WebhookPlugin
from tracetune.backend.services import Backend
from tracetune.backend.task_texts import TextTooLongError
from tracetune.sync.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    TracetuneError,
)
from tracetune.sync.redis_client import display_url
from tracetune.sync.settings import Settings

log = logging.getLogger(__name__)

MODEL_CLASS = "TracetuneBackend"
MAX_BODY_BYTES = 256 * 1024 * 1024
#: Judges besides the signals and concepts; their versions are part of the model version.
JUDGES = {"grounding": grounding.VERSION}

_STATUS: list[tuple[type[TracetuneError], int]] = [
    (MalformedRequestError, 400),
    (TextTooLongError, 413),
    (InvalidInputError, 422),
    (AuthenticationError, 401),
    (NotFoundError, 404),
    (ConfigurationError, 503),
    (ServiceUnavailableError, 503),
]


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": message, "status": status}), status


def _basic_auth_guard(settings: Settings) -> Any:
    user = settings.basic_auth_user
    password = settings.secret("basic_auth_pass")
    if not (user and password):
        return None

    def check() -> Any:
        auth = request.authorization
        if (
            auth is None
            or not hmac.compare_digest(auth.username or "", user)
            or not hmac.compare_digest(auth.password or "", password)
        ):
            response, status = _error("authentication required (HTTP basic auth)", 401)
            response.headers["WWW-Authenticate"] = 'Basic realm="tracetune"'
            return response, status
        return None

    return check


def create_app(
    settings: Settings | None = None,
    backend: Backend | None = None,
    warm_up: bool = True,
    plugins: Sequence[WebhookPlugin] = (),
) -> Flask:
    """Build the app; `warm_up` starts loading the model and built-in concepts at once.

    Every signal runs once here, in the thread that builds the app, before it serves: what a
    signal loads lazily is loaded then, and a worker that cannot predict says so from the
    start. `plugins` add webhook handlers of other parts (the worker's automatic export).
    """
    settings = settings or Settings()
    backend = backend or Backend.create(settings)
    at_start = prediction_problems(backend.predictor.signals, backend.client)
    if at_start:
        log.error("this worker cannot predict: %s", at_start)
    webhooks = WebhookDispatcher()
    stale = StalePredictionRemover(settings)
    register_learning(backend, webhooks)
    for plugin in plugins:
        webhooks.register(plugin.actions, plugin.build(settings))
    if warm_up:
        backend.warm_up()

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json = OrjsonProvider(app)
    app.extensions["tracetune"] = backend
    app.extensions["tracetune_problems_at_start"] = at_start
    guard = _basic_auth_guard(settings)
    if guard is not None:
        app.before_request(guard)

    @app.errorhandler(TracetuneError)
    def tracetune_error(exc: TracetuneError) -> tuple[Response, int]:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
        return _error(str(exc), status)

    @app.errorhandler(redis.RedisError)
    def redis_error(exc: redis.RedisError) -> tuple[Response, int]:
        return _error(f"cannot reach Redis at {display_url(settings.redis_url)}: {exc}", 503)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return _error(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _error(f"internal error ({type(exc).__name__}); see the backend's log", 500)

    @app.get("/")
    @app.get("/health")
    def health() -> tuple[Response, int]:
        found = prediction_problems(backend.predictor.signals, backend.client)
        body: dict[str, Any] = {
            "status": "DOWN" if found else "UP",
            "model_class": MODEL_CLASS,
            "model_ready": backend.embedder.ready,
        }
        if found:
            body["cannot_predict"] = found
        return jsonify(body), 503 if found else 200

    def version_of(targets: LabelTargets) -> str:
        return backend.predictor.model_version(targets, JUDGES)

    @app.post("/setup")
    def setup() -> Response:
        body = json_body()
        project = project_key(body.get("project"))
        config = body.get("schema")
        targets = read_targets(config)
        backend.remember_config(project, cast(str, config))
        return jsonify({"model_version": version_of(targets)})

    @app.post("/predict")
    def predict() -> Response:
        body = json_body()
        project = project_key(body.get("project"))
        config = body.get("label_config")
        targets = read_targets(config)
        batch = read_batch(
            required_list(body, "tasks"), targets, settings.tracetune_backend_max_text_chars
        )
        backend.remember_config(project, cast(str, config))
        version = version_of(targets)
        results = prelabel(backend, targets, batch, project, version)
        stale.remove(int(project), batch, version)
        backend.client.hincrby(key("metrics"), "predict_requests", 1)
        return jsonify({"results": results, "model_version": version})

    @app.post("/train")
    def train() -> Response:
        body = json_body()
        project_key(body.get("project"))
        config = body.get("label_config")
        if not isinstance(config, str):
            raise InvalidInputError("the request needs the project's 'label_config'")
        changed: set[str] = set()
        for task in required_list(body, "annotations"):
            annotations = task.get("annotations") if isinstance(task, Mapping) else None
            if not isinstance(annotations, list):
                raise InvalidInputError("each item of 'annotations' needs an 'annotations' list")
            changed |= learn_from_task(backend, config, task, annotations)
        backend.trainer.schedule(changed)
        return jsonify({"status": "ok", "retraining": sorted(changed)})

    @app.post("/webhook")
    def webhook() -> Response:
        outcome = webhooks.dispatch(json_body())
        backend.client.hincrby(key("metrics"), "webhook_events", 1)
        return jsonify(outcome)

    @app.get("/versions")
    def versions() -> Response:
        body = request.get_json(force=True, silent=True) or {}
        project = body.get("project") if isinstance(body, Mapping) else None
        config = backend.config_of(project_key(project or request.args.get("project")))
        if config is None:
            raise NotFoundError("unknown project: Label Studio has not called /setup for it yet")
        return jsonify({"versions": [version_of(read_targets(config))]})

    @app.get("/metrics")
    def metrics() -> Response:
        counters = cast(dict[bytes, bytes], backend.client.hgetall(key("metrics")))
        names = backend.concepts.names()
        return jsonify(
            {
                "model_ready": backend.embedder.ready,
                "counters": {k.decode(): int(v) for k, v in sorted(counters.items())},
                "concept_versions": backend.concepts.versions(names),
            }
        )

    return app
