"""An httpx transport whose sockets acknowledge what they receive at once (Linux).

`label-studio start` serves through Django's development server, which sends a response's
headers and its body in two writes. With Nagle's algorithm on the server's side and delayed
acknowledgements on ours, the body waits until our kernel acknowledges the headers: 40 ms on
Linux, on every request (55 ms a `whoami` against 9 ms, measured here). A sync makes a dozen
small requests besides its imports (project lookup and creation, task counts, the review
tabs), so asking for a quick acknowledgement before each read is most of the time a sync
spends outside the imports. Where the option does not exist, the transport is httpx's own.
"""

from __future__ import annotations

import socket
from typing import Any

import httpcore
import httpx

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _QuickAckStream(httpcore.NetworkStream):
    """A connection's stream that re-arms TCP_QUICKACK before each read (the kernel drops it)."""

    def __init__(self, stream: httpcore.NetworkStream, option: int) -> None:
        self._stream = stream
        self._option = option
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._socket is not None:
            self._socket.setsockopt(socket.IPPROTO_TCP, self._option, 1)
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _QuickAckStream(tls, self._option)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _QuickAckBackend(httpcore.SyncBackend):
    def __init__(self, option: int) -> None:
        self._option = option

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _QuickAckStream(super().connect_tcp(*args, **kwargs), self._option)


def quick_ack_transport() -> httpx.HTTPTransport:
    """httpx's default transport, with quick acknowledgements where the platform has them."""
    context = httpx.create_ssl_context()
    transport = httpx.HTTPTransport(verify=context)
    if _QUICKACK is not None:
        limits = httpx.Limits()
        transport._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_QuickAckBackend(_QUICKACK),
        )
    return transport
