"""Read a project's tasks with their annotations and predictions, in large pages.

`GET /api/tasks?project=<id>&fields=all&page_size=<n>&page=<k>` returns full `annotations` and
`predictions` (the JSON export endpoint only gives prediction ids). Pages are read as plain JSON
through the SDK's own authentication headers, so legacy tokens and personal access tokens both
work, and no typed model is built per task.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx

from tracetune.sync.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
)
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.settings import Settings


class TaskReader:
    """Projects and task pages of one Label Studio instance."""

    def __init__(self, settings: Settings) -> None:
        self.gateway = LabelStudioGateway(settings)
        self.url = self.gateway.url
        self.page_size = settings.tracetune_page_size
        self.http = httpx.Client(base_url=self.url, timeout=settings.http_timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TaskReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        # The SDK's wrapper resolves the API key into the right Authorization header
        # (legacy `Token`, or a `Bearer` access token refreshed from a personal access token).
        headers = self.gateway.client._client_wrapper.get_headers()
        try:
            response = self.http.get(path, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(
                f"cannot reach Label Studio at {self.url}: {exc}"
            ) from exc
        if response.status_code in (401, 403):
            raise AuthenticationError(
                f"Label Studio at {self.url} refused the API key (HTTP {response.status_code})"
            )
        if response.status_code == 404:
            raise NotFoundError(f"Label Studio at {self.url}: {path} not found")
        if response.status_code >= 500 or response.status_code == 429:
            raise ServiceUnavailableError(
                f"Label Studio at {self.url} failed (HTTP {response.status_code})"
            )
        if response.status_code >= 400:
            raise InvalidInputError(f"Label Studio rejected {path}: {response.text[:300]}")
        return response.json()

    def resolve_project(self, project: str) -> tuple[int, str]:
        """A project id or title → (id, title)."""
        found = self.gateway.resolve_project(project)
        return int(found.id or 0), str(found.title or "")

    def pages(self, project_id: int) -> Iterator[list[dict[str, Any]]]:
        """Every task of the project, one page (`page_size` tasks) at a time, in id order."""
        params: dict[str, Any] = {
            "project": project_id,
            "fields": "all",
            "page_size": self.page_size,
            "page": 1,
        }
        body = self._get("/api/tasks", params)
        total = int(body.get("total") or 0)
        yield list(body.get("tasks") or [])
        for page in range(2, math.ceil(total / self.page_size) + 1):
            body = self._get("/api/tasks", {**params, "page": page})
            yield list(body.get("tasks") or [])
