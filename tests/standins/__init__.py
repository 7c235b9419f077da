"""Local stand-ins of the HTTP APIs tracetune talks to, served on free loopback ports.

Each stand-in is a Flask application factory plus a small class that serves it from a
background thread, so tests, fixture generators and benchmarks drive the real client SDKs
against it without any network access.
"""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log: a sync makes thousands."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class BackgroundServer:
    """A threaded werkzeug server for one WSGI app, on a free loopback port.

    Threaded because the SDKs under test send from several threads at once (the LangSmith
    client ingests runs from a background thread while the test reads them back).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"standin-{self.url}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._server.server_close()
