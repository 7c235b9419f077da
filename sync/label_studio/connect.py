"""Connecting a Label Studio project to the ML backend: its model, webhook, settings and tabs.

The webhook (`<backend>/webhook`, every action, with the basic-auth header when the backend
has credentials) is what brings reviewers' annotations to the backend; Label Studio sends none
otherwise. The project is then set to pre-label from the backend ("Use predictions to
prelabel tasks" on, the model version set to the backend's title, which Label Studio calls the
live model): "Label All Tasks" asks the backend for each task it hands out and starts from its
prediction, with no settings page to visit. The review tabs are refreshed too, since connecting
is what a project that was not synced by tracetune goes through. Everything is idempotent: an
existing webhook or model with the same URL is kept.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from tracetune.sync.label_studio.gateway import LabelStudioGateway, label_studio_errors
from tracetune.sync.label_studio.views import TabsReport, ensure_review_tabs
from tracetune.sync.settings import Settings


@dataclass(frozen=True)
class Connection:
    project_id: int
    project_title: str
    backend_url: str
    webhook_url: str
    webhook_created: bool
    model_created: bool
    live_model: str  # the model version the project pre-labels from: the backend's title
    tabs: TabsReport


def connect_backend(
    settings: Settings, project: str, backend_url: str, title: str = "tracetune"
) -> Connection:
    """Make PROJECT (title or id) use the backend at `backend_url`; safe to repeat."""
    gateway = LabelStudioGateway(settings)
    found = gateway.resolve_project(project)
    backend_url = backend_url.rstrip("/")
    password = settings.secret("basic_auth_pass")
    auth: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if settings.basic_auth_user and password:
        auth = {
            "auth_method": "BASIC_AUTH",
            "basic_auth_user": settings.basic_auth_user,
            "basic_auth_pass": password,
        }
        token = base64.b64encode(f"{settings.basic_auth_user}:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
    client = gateway.client
    hook_url = f"{backend_url}/webhook"
    with label_studio_errors(gateway.url):
        hooks = [h for h in client.webhooks.list(project=found.id) if h.url == hook_url]
        if not hooks:
            client.webhooks.create(
                url=hook_url,
                project=found.id,
                send_payload=True,
                send_for_all_actions=True,
                headers=headers,
            )
        models = [m for m in client.ml.list(project=found.id) if m.url.rstrip("/") == backend_url]
        model = models[0] if models else None
        if model is None:
            model = client.ml.create(url=backend_url, project=found.id, title=title, **auth)
        live_model = str(model.title or title)
        client.projects.update(id=found.id, show_collab_predictions=True, model_version=live_model)
    tabs = ensure_review_tabs(gateway, int(found.id))
    return Connection(
        project_id=int(found.id),
        project_title=str(found.title),
        backend_url=backend_url,
        webhook_url=hook_url,
        webhook_created=not hooks,
        model_created=not models,
        live_model=live_model,
        tabs=tabs,
    )
