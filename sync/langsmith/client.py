"""The LangSmith edge: the SDK's clients for one LangSmith, and their errors mapped to ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import langsmith
from langsmith import utils

from tracetune.sync.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
)
from tracetune.sync.settings import Settings


@dataclass(frozen=True)
class LangSmithClients:
    """The two SDK clients of one LangSmith, with the same endpoint, key and timeout.

    `client` (`langsmith.Client`) reads projects, feedback and datasets; `api` (the SDK's
    generated `langsmith.Langsmith`) reads runs through the v2 query, `api.runs.query()`.
    """

    client: langsmith.Client
    api: langsmith.Langsmith
    endpoint: str


def make_client(settings: Settings) -> LangSmithClients:
    """The SDK clients for `LANGSMITH_ENDPOINT` / `LANGSMITH_API_KEY`."""
    api_key = settings.secret("langsmith_api_key")
    if not api_key:
        raise ConfigurationError("LANGSMITH_API_KEY is not set")
    client = langsmith.Client(
        api_url=settings.langsmith_endpoint,
        api_key=api_key,
        timeout_ms=int(settings.http_timeout_s * 1000),
    )
    api = langsmith.Langsmith(
        api_key=api_key,
        tenant_id=client.workspace_id,
        base_url=v2_base_url(settings.langsmith_endpoint),
        timeout=settings.http_timeout_s,
    )
    return LangSmithClients(client, api, settings.langsmith_endpoint)


def v2_base_url(endpoint: str) -> str:
    """The generated client's base URL: v2 paths start at the host, not under `/api/v1`."""
    endpoint = endpoint.rstrip("/")
    for suffix in ("/api/v1", "/api"):
        if endpoint.endswith(suffix):
            return endpoint[: -len(suffix)]
    return endpoint


@contextmanager
def langsmith_errors(endpoint: str) -> Iterator[None]:
    """Turn SDK failures (of either client) into one-line errors naming what to fix."""
    try:
        yield
    except (utils.LangSmithAuthError, langsmith.AuthenticationError) as exc:
        raise AuthenticationError(f"LangSmith at {endpoint} refused the API key") from exc
    except langsmith.PermissionDeniedError as exc:
        raise AuthenticationError(
            f"LangSmith at {endpoint} denied access: {_first_line(exc)}"
        ) from exc
    except (utils.LangSmithNotFoundError, langsmith.NotFoundError) as exc:
        raise NotFoundError(f"LangSmith: {_first_line(exc)}") from exc
    except (utils.LangSmithConnectionError, langsmith.APIConnectionError) as exc:
        raise ServiceUnavailableError(f"cannot reach LangSmith at {endpoint}") from exc
    except (
        utils.LangSmithUserError,
        langsmith.BadRequestError,
        langsmith.UnprocessableEntityError,
    ) as exc:
        raise InvalidInputError(f"LangSmith rejected the request: {_first_line(exc)}") from exc
    except utils.LangSmithError as exc:
        message = _first_line(exc)
        if "400" in message or "Bad Request" in message:
            raise InvalidInputError(f"LangSmith rejected the request: {message}") from exc
        raise ServiceUnavailableError(f"LangSmith at {endpoint} failed: {message}") from exc
    except langsmith.APIError as exc:
        raise ServiceUnavailableError(
            f"LangSmith at {endpoint} failed: {_first_line(exc)}"
        ) from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
