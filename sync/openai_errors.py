"""The `openai` SDK's failures as tracetune's errors, for every OpenAI-compatible API it calls.

Fine-tuning, evaluation endpoints and the LLM judge all talk through the same SDK, so one
mapping keeps their one-line errors and exit codes alike: connection trouble, 429 and 5xx are
`ServiceUnavailableError` (transient, retried by the worker's jobs), a refused key is
`AuthenticationError`, anything else the API rejects is bad input.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tracetune.sync.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
)


@contextmanager
def openai_errors(service: str, not_found: str) -> Iterator[None]:
    """`service` names the API in each message ("the OpenAI API at <url>"); `not_found` is
    what a 404 means there (a missing job or file, a model the endpoint does not serve)."""
    import openai  # imported here: the CLI starts without the SDK until a command needs it

    try:
        yield
    except openai.APIConnectionError as exc:
        raise ServiceUnavailableError(f"cannot reach {service}: {exc}") from exc
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise AuthenticationError(f"{service} refused the key: {exc}") from exc
    except openai.NotFoundError as exc:
        raise NotFoundError(f"{not_found}: {exc}") from exc
    except (openai.RateLimitError, openai.InternalServerError) as exc:
        raise ServiceUnavailableError(f"{service} failed: {exc}") from exc
    except openai.APIStatusError as exc:
        raise InvalidInputError(f"{service} rejected the request: {exc}") from exc
