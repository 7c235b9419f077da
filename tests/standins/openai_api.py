"""An OpenAI API stand-in for files and fine-tuning jobs, for the real `openai` SDK.

Implements `/v1/files` (upload, list, retrieve, content) and `/v1/fine_tuning/jobs` (create,
list, retrieve, events, cancel) with the shapes of OpenAI's API reference. Job status advances
one step per retrieve (validating_files → queued → running → succeeded), so tests follow a job
to completion without waiting on a clock. Every request is recorded for assertions.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request

PROGRESSION = ["validating_files", "queued", "running", "succeeded"]


@dataclass
class OpenAIState:
    api_key: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail_next: int = 0
    #: When set, `POST /v1/fine_tuning/jobs` answers this (status, message, code), as a platform
    #: that no longer accepts new jobs does.
    refuse_jobs: tuple[int, str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.files.clear()
            self.contents.clear()
            self.jobs.clear()
            self.events.clear()
            self.requests.clear()
            self.fail_next = 0
            self.refuse_jobs = None

    def uploads(self) -> list[str]:
        return [path for method, path in self.requests if method == "POST" and path == "/v1/files"]


def _error(
    status: int, message: str, kind: str = "invalid_request_error", code: str | None = None
) -> Response:
    response = jsonify({"error": {"message": message, "type": kind, "param": None, "code": code}})
    response.status_code = status
    return response


def create_app(state: OpenAIState) -> Flask:
    app = Flask("openai-standin")

    def event(job_id: str, message: str) -> None:
        state.events.setdefault(job_id, []).append(
            {
                "id": f"ftevent-{secrets.token_hex(6)}",
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()) + len(state.events.get(job_id, [])),
                "level": "info",
                "message": message,
                "type": "message",
                "data": {},
            }
        )

    @app.before_request
    def authenticate() -> Response | None:
        state.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {state.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if state.fail_next > 0:
            state.fail_next -= 1
            return _error(503, "The server is overloaded.", "server_error")
        return None

    @app.post("/v1/files")
    def upload() -> Response:
        upload = request.files.get("file")
        purpose = request.form.get("purpose")
        if upload is None or purpose not in ("fine-tune", "batch", "assistants"):
            return _error(400, "file and a valid purpose are required")
        content = upload.read()
        file_id = f"file-{secrets.token_hex(8)}"
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": upload.filename,
            "purpose": purpose,
            "status": "processed",
        }
        with state.lock:
            state.files[file_id] = record
            state.contents[file_id] = content
        return jsonify(record)

    @app.get("/v1/files")
    def list_files() -> Response:
        return jsonify({"object": "list", "data": list(state.files.values()), "has_more": False})

    @app.get("/v1/files/<file_id>")
    def get_file(file_id: str) -> Response:
        if file_id not in state.files:
            return _error(404, f"No such File object: {file_id}")
        return jsonify(state.files[file_id])

    @app.get("/v1/files/<file_id>/content")
    def file_content(file_id: str) -> Response:
        if file_id not in state.contents:
            return _error(404, f"No such File object: {file_id}")
        return Response(state.contents[file_id], mimetype="application/octet-stream")

    @app.post("/v1/fine_tuning/jobs")
    def create_job() -> Response:
        body = request.get_json(force=True)
        if state.refuse_jobs is not None:
            status, message, code = state.refuse_jobs
            return _error(status, message, code=code)
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None and body[key] not in state.files:
                return _error(400, f"invalid {key}: {body[key]}")
        if not body.get("model") or not body.get("training_file"):
            return _error(400, "model and training_file are required")
        method = body.get("method") or {"type": "supervised", "supervised": {}}
        hyper = (method.get(method["type"]) or {}).get("hyperparameters") or {}
        job_id = f"ftjob-{secrets.token_hex(8)}"
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "model": body["model"],
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", **hyper},
            "method": method,
            "status": "validating_files",
            "fine_tuned_model": None,
            "finished_at": None,
            "error": None,
            "organization_id": "org-standin",
            "result_files": [],
            "seed": body.get("seed") or 0,
            "trained_tokens": None,
            "suffix": body.get("suffix"),
            "metadata": body.get("metadata"),
        }
        with state.lock:
            state.jobs[job_id] = job
            event(job_id, f"Validating training file: {body['training_file']}")
        return jsonify(job)

    @app.get("/v1/fine_tuning/jobs")
    def list_jobs() -> Response:
        jobs = sorted(state.jobs.values(), key=lambda j: j["created_at"], reverse=True)
        return jsonify({"object": "list", "data": jobs, "has_more": False})

    @app.get("/v1/fine_tuning/jobs/<job_id>")
    def get_job(job_id: str) -> Response:
        with state.lock:
            job = state.jobs.get(job_id)
            if job is None:
                return _error(404, f"Could not find fine-tune: {job_id}")
            if job["status"] in PROGRESSION[:-1]:
                job["status"] = PROGRESSION[PROGRESSION.index(job["status"]) + 1]
                event(job_id, f"Job is {job['status'].replace('_', ' ')}")
                if job["status"] == "succeeded":
                    suffix = job.get("suffix") or "standin"
                    job["fine_tuned_model"] = (
                        f"ft:{job['model']}:org-standin:{suffix}:{job_id[-8:]}"
                    )
                    job["finished_at"] = int(time.time())
                    job["trained_tokens"] = len(state.contents[job["training_file"]]) // 4
                    event(job_id, "The job has successfully completed")
            return jsonify(job)

    @app.get("/v1/fine_tuning/jobs/<job_id>/events")
    def job_events(job_id: str) -> Response:
        if job_id not in state.jobs:
            return _error(404, f"Could not find fine-tune: {job_id}")
        limit = int(request.args.get("limit", 20))
        events = list(reversed(state.events.get(job_id, [])))[:limit]
        return jsonify({"object": "list", "data": events, "has_more": False})

    @app.post("/v1/fine_tuning/jobs/<job_id>/cancel")
    def cancel(job_id: str) -> Response:
        with state.lock:
            job = state.jobs.get(job_id)
            if job is None:
                return _error(404, f"Could not find fine-tune: {job_id}")
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return _error(400, f"Job has already completed: {job['status']}")
            job["status"] = "cancelled"
            event(job_id, "Job was cancelled")
            return jsonify(job)

    return app
