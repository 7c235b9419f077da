"""One exception hierarchy for every expected failure.

The CLI catches `TracetuneError` and prints its message on one line with a non-zero exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TracetuneError(Exception):
    """An expected failure that the user can fix (bad key, server down, bad input)."""

    exit_code = 1


class ConfigurationError(TracetuneError):
    """A setting is missing or invalid."""

    exit_code = 2


class ServiceUnavailableError(TracetuneError):
    """A server (Label Studio, LangSmith, Redis, OpenAI) cannot be reached."""

    exit_code = 3


class AuthenticationError(TracetuneError):
    """A server refused the credentials."""

    exit_code = 4


class NotFoundError(TracetuneError):
    """A named project, dataset, task or job does not exist."""

    exit_code = 5


class InvalidInputError(TracetuneError):
    """Input data (a file, a run, a label config, a request body) is malformed."""

    exit_code = 6


class SyncLockedError(TracetuneError):
    """Another sync of the same project holds its lock (the message says who, since when)."""

    exit_code = 7


class RefusedError(TracetuneError):
    """The action was refused: an evaluation says the model is worse (`--force` overrides),
    or a platform no longer accepts the request (OpenAI's end of self-serve fine-tuning)."""

    exit_code = 8
