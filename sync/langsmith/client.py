"""The LangSmith edge: a real `langsmith.Client`, and its errors mapped to ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


def make_client(settings: Settings) -> langsmith.Client:
    """A `langsmith.Client` for `LANGSMITH_ENDPOINT` / `LANGSMITH_API_KEY`."""
    api_key = settings.secret("langsmith_api_key")
    if not api_key:
        raise ConfigurationError("LANGSMITH_API_KEY is not set")
    return langsmith.Client(
        api_url=settings.langsmith_endpoint,
        api_key=api_key,
        timeout_ms=int(settings.http_timeout_s * 1000),
    )


@contextmanager
def langsmith_errors(endpoint: str) -> Iterator[None]:
    """Turn SDK failures into one-line errors naming what to fix."""
    try:
        yield
    except utils.LangSmithAuthError as exc:
        raise AuthenticationError(f"LangSmith at {endpoint} refused the API key") from exc
    except utils.LangSmithNotFoundError as exc:
        raise NotFoundError(f"LangSmith: {_first_line(exc)}") from exc
    except utils.LangSmithConnectionError as exc:
        raise ServiceUnavailableError(f"cannot reach LangSmith at {endpoint}") from exc
    except utils.LangSmithUserError as exc:
        raise InvalidInputError(f"LangSmith rejected the request: {_first_line(exc)}") from exc
    except utils.LangSmithError as exc:
        message = _first_line(exc)
        if "400" in message or "Bad Request" in message:
            raise InvalidInputError(f"LangSmith rejected the request: {message}") from exc
        raise ServiceUnavailableError(f"LangSmith at {endpoint} failed: {message}") from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
