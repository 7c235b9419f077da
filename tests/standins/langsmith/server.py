"""`LangSmithStandIn`: the stand-in served on a free loopback port until `stop()`."""

from __future__ import annotations

from standins import BackgroundServer
from standins.langsmith.app import RequestRecord, create_app
from standins.langsmith.store import RunStore


class LangSmithStandIn:
    """The stand-in served on a free loopback port, from construction until `stop()`.

    `runs_v2=False` makes it a LangSmith without the v2 run query (see `create_app`).

    >>> with LangSmithStandIn(api_key="test-key") as langsmith:
    ...     client = langsmith_sdk.Client(api_url=langsmith.url, api_key=langsmith.api_key)
    """

    def __init__(
        self,
        api_key: str = "standin-key",
        store: RunStore | None = None,
        *,
        multipart: bool = True,
        runs_v2: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.store = store if store is not None else RunStore()
        self.requests: list[RequestRecord] = []
        app = create_app(
            api_key, self.store, multipart=multipart, runs_v2=runs_v2, log=self.requests
        )
        self._server = BackgroundServer(app, host, port)
        self.url = self._server.url

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LangSmithStandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
