"""The Label Studio edge: every SDK call the sync makes, with errors mapped to ours.

Tasks are keyed by `data.run_id`; Label Studio is the truth about which runs are imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.core.jsonable_encoder import jsonable_encoder

from tracetune.sync.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    TracetuneError,
)
from tracetune.sync.label_studio.quick_ack import quick_ack_transport
from tracetune.sync.settings import Settings

T = TypeVar("T")
#: orjson writes JSON's own types; anything else (datetimes, dataclasses, subclasses of str or
#: int) goes to the SDK's `jsonable_encoder`, so the body says what the SDK's would.
_AS_THE_SDK_WRITES = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


@dataclass(frozen=True)
class RunTask:
    """A task as the sync sees it: the run it holds and how many reviews it has."""

    task_id: int
    run_id: str
    annotations: int


@contextmanager
def label_studio_errors(url: str) -> Iterator[None]:
    """Turn SDK and transport failures into one-line, actionable errors."""
    try:
        yield
    except ApiError as exc:
        raise status_error(url, exc.status_code or 0, _detail(exc.body)) from exc
    except httpx.TransportError as exc:
        raise ServiceUnavailableError(f"cannot reach Label Studio at {url}: {exc}") from exc


def status_error(url: str, status: int, detail: str) -> TracetuneError:
    """The error of ours for an HTTP error status from Label Studio."""
    if status in (401, 403):
        return AuthenticationError(
            f"Label Studio at {url} refused the API key (HTTP {status}): {detail}"
        )
    if status == 404:
        return NotFoundError(f"Label Studio at {url}: not found: {detail}")
    if 400 <= status < 500:
        return InvalidInputError(f"Label Studio rejected the request: {detail}")
    return ServiceUnavailableError(f"Label Studio at {url} failed (HTTP {status})")


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("validation_errors", "detail", "message"):
            if body.get(key):
                return str(body[key])[:500]
    return str(body)[:500]


class LabelStudioGateway:
    """Projects, configs and task imports in one Label Studio instance.

    The one place a Label Studio client is built from the settings; `client` is the SDK's,
    for calls the gateway does not wrap (always inside `label_studio_errors`).
    """

    def __init__(self, settings: Settings) -> None:
        api_key = settings.secret("label_studio_api_key")
        if not api_key:
            raise AuthenticationError("LABEL_STUDIO_API_KEY is not set")
        self.url = settings.label_studio_url.rstrip("/")
        #: One connection pool for the SDK and for the calls it does not model (`api_json`),
        #: which paid for a client, and its TLS context, per call.
        self._http = httpx.Client(
            timeout=settings.http_timeout_s, follow_redirects=True, transport=quick_ack_transport()
        )
        self.client = LabelStudio(
            base_url=self.url,
            api_key=api_key,
            timeout=settings.http_timeout_s,
            httpx_client=self._http,
        )

    def _call(self, fn: Callable[[], T]) -> T:
        with label_studio_errors(self.url):
            return fn()

    def check(self) -> None:
        """Fail fast with a clear error before any work if the server or the key is wrong."""
        self._call(lambda: self.client.users.whoami())

    def find_project(self, title: str) -> Any | None:
        projects: list[Any] = self._call(
            lambda: list(self.client.projects.list(title=title, page_size=100))
        )
        matches = [p for p in projects if p.title == title]
        return min(matches, key=lambda p: p.id) if matches else None

    def resolve_project(self, project: str) -> Any:
        """A project named by the user: its id when PROJECT is a number, else its title."""
        if project.isdigit():
            return self.project(int(project))
        found = self.find_project(project)
        if found is None:
            raise NotFoundError(f"no Label Studio project titled {project!r} at {self.url}")
        return found

    def ensure_project(self, title: str, label_config: str, description: str = "") -> Any:
        """Reuse the project with this title (updating its config) or create it.

        Two syncs may create the same title at once; both then settle on the oldest project
        and the other, still empty, is deleted, so their runs never split over two projects.
        """
        if len(title) < 3:
            raise InvalidInputError("a Label Studio project title needs at least 3 characters")
        project = self.find_project(title)
        if project is None:
            created: Any = self._call(
                lambda: self.client.projects.create(
                    title=title, label_config=label_config, description=description
                )
            )
            project = self.find_project(title) or created
            if project.id != created.id:
                self._call(lambda: self.client.projects.delete(id=created.id))
        if project.label_config != label_config:
            project = self._call(
                lambda: self.client.projects.update(id=project.id, label_config=label_config)
            )
        return project

    def project(self, project_id: int) -> Any:
        return self._call(lambda: self.client.projects.get(id=project_id))

    def task_count(self, project_id: int) -> int:
        return int(self.project(project_id).task_number or 0)

    def run_tasks(self, project_id: int, page_size: int = 1000) -> list[RunTask]:
        """Every task of the project and its run id ("" when it holds none), in large pages."""

        def read() -> list[RunTask]:
            found = []
            pager: Any = self.client.tasks.list(
                project=project_id,
                page_size=page_size,
                fields="task_only",
                include="id,data,total_annotations",
            )
            for task in pager:
                run_id = str((task.data or {}).get("run_id") or "")
                found.append(RunTask(int(task.id), run_id, task.total_annotations or 0))
            return found

        return self._call(read)

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> None:
        """Delete tasks in one Data Manager action (tasks already gone are no error)."""
        if task_ids:
            self._call(
                lambda: self.client.actions.create(
                    id="delete_tasks",
                    project=project_id,
                    selected_items={"all": False, "included": list(task_ids)},
                )
            )

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> int:
        """Import one batch in one request; Label Studio commits it as a whole.

        The body is encoded once with orjson and sent through the SDK's own HTTP client (its
        authentication, timeout and retries): the SDK's `projects.import_tasks` walks every
        task twice to encode it, which cost a sync more CPU than converting the runs did.
        A payload orjson cannot write (text with lone surrogates) goes through the SDK's call.
        """
        if not tasks:
            return 0
        payload: Any = [{"data": data} for data in tasks]
        try:
            body = orjson.dumps(payload, default=jsonable_encoder, option=_AS_THE_SDK_WRITES)
        except TypeError:
            imported = self._call(
                lambda: self.client.projects.import_tasks(id=project_id, request=payload)
            )
            return int(imported.task_count or 0)
        response = self._call(
            lambda: self.client._client_wrapper.httpx_client.request(
                f"api/projects/{project_id}/import",
                method="POST",
                content=body,
                headers={"content-type": "application/json"},
            )
        )
        answer = _json_answer(self.url, response)
        return int(answer.get("task_count") or 0) if isinstance(answer, dict) else 0

    def project_url(self, project_id: int) -> str:
        return f"{self.url}/projects/{project_id}/data"

    def api_json(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        """A call the SDK does not model in full (Data Manager views and columns), as plain
        JSON with the SDK's own authentication headers; errors mapped like every other."""
        headers = self.client._client_wrapper.get_headers()
        try:
            response = self._http.request(
                method,
                f"{self.url}{path}",
                params=params,
                json=body,
                headers=headers,
                follow_redirects=False,
            )
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(
                f"cannot reach Label Studio at {self.url}: {exc}"
            ) from exc
        return _json_answer(self.url, response)


def _json_answer(url: str, response: httpx.Response) -> Any:
    """A response's JSON (None when empty), or the error of ours for its status."""
    if response.status_code >= 400:
        try:
            detail = _detail(response.json())
        except ValueError:
            detail = response.text[:500]
        raise status_error(url, response.status_code, detail)
    return response.json() if response.content else None
