"""`POST /webhook`: a small dispatcher from Label Studio's webhook actions to handlers.

The backend registers concept learning for annotation events. Other parts of tracetune plug
their own handlers in as `WebhookPlugin`s passed to `create_app` by whoever composes the
served app (the command line passes the worker's automatic export), so the backend never
imports them. Handlers must return quickly: Label Studio waits 1 s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.settings import Settings

Handler = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class WebhookPlugin(NamedTuple):
    """Label Studio actions another part wants, and how it builds its handler per app."""

    actions: frozenset[str]
    build: Callable[[Settings], Handler]


class WebhookDispatcher:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def register(self, actions: Iterable[str], handler: Handler) -> None:
        for action in actions:
            self._handlers[action].append(handler)

    def dispatch(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        action = payload.get("action")
        if not isinstance(action, str) or not action:
            raise InvalidInputError("a webhook payload needs an 'action' string")
        handlers = self._handlers.get(action, [])
        return {
            "action": action,
            "status": "ok" if handlers else "ignored",
            "results": [dict(handler(payload)) for handler in handlers],
        }
