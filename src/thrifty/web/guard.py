"""Connection limits the ASGI app cannot set itself: a time limit on a request's headers (uvicorn
has none, so a client sending a byte every few seconds holds a connection for ever: slowloris), a
cap on connections per client address and in total, and the HTTP layer's own 400s in JSON rather
than plain text. Each served socket gets its own ``ConnectionGuard``; nothing is process-global."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from thrifty.config.gateway import ServerSpec

__all__ = ["ConnectionGuard", "guarded_protocol", "uvicorn_config"]


def _error_response(status: int, reason: str, message: str, kind: str) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": kind, "code": None}})
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass
class ConnectionGuard:
    """The connections of one server, by client address."""

    max_connections: int
    max_per_client: int
    header_timeout_s: float
    by_client: dict[str, int] = field(default_factory=dict)
    total: int = 0
    refused: int = 0
    timed_out: int = 0

    def admit(self, client: str) -> str | None:
        """None when the connection may stay; otherwise why not."""
        held = self.by_client.get(client, 0)
        if self.total >= self.max_connections:
            return f"the gateway holds its limit of {self.max_connections} connections (server.max_connections)"
        if held >= self.max_per_client:
            return f"{client} holds {held} connections, the limit per client (server.max_connections_per_client)"
        self.by_client[client] = held + 1
        self.total += 1
        return None

    def release(self, client: str) -> None:
        held = self.by_client.get(client, 0) - 1
        if held > 0:
            self.by_client[client] = held
        else:
            self.by_client.pop(client, None)
        self.total -= 1


def guarded_protocol(guard: ConnectionGuard) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with ``guard``'s limits (pass it as ``uvicorn.Config(http=...)``)."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _thrifty_client: str | None = None
        _thrifty_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            client = self.client[0] if self.client else "unknown"
            refusal = guard.admit(client)
            if refusal is not None:
                guard.refused += 1
                transport.write(_error_response(429, "Too Many Requests", refusal, "rate_limit_error"))
                transport.close()
                return
            self._thrifty_client = client
            self._start_header_timer()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._start_header_timer()  # the next request on a kept-alive connection, too

        def on_headers_complete(self) -> None:
            self._stop_header_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            if self._thrifty_client is not None:
                guard.release(self._thrifty_client)
                self._thrifty_client = None
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_error_response(400, "Bad Request", msg, "invalid_request_error"))
            self.transport.close()

        def _start_header_timer(self) -> None:
            if self._thrifty_timer is None:
                self._thrifty_timer = self.loop.call_later(guard.header_timeout_s, self._headers_too_slow)

        def _stop_header_timer(self) -> None:
            if self._thrifty_timer is not None:
                self._thrifty_timer.cancel()
                self._thrifty_timer = None

        def _headers_too_slow(self) -> None:
            self._thrifty_timer = None
            guard.timed_out += 1
            message = (
                f"the request headers did not arrive within {guard.header_timeout_s:g} s (server.header_timeout_s)"
            )
            self.transport.write(_error_response(408, "Request Timeout", message, "invalid_request_error"))
            self.transport.close()

    return GuardedHttpToolsProtocol


def uvicorn_config(app: object, server: ServerSpec, *, log_level: str = "warning") -> uvicorn.Config:
    """How the gateway is served: httptools under ``server:``'s connection limits."""
    guard = ConnectionGuard(
        max_connections=server.max_connections,
        max_per_client=server.max_connections_per_client,
        header_timeout_s=server.header_timeout_s,
    )
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=guarded_protocol(guard),
        lifespan="on",
        log_level=log_level,
        access_log=False,
        proxy_headers=False,  # X-Forwarded-* rewriting is for apps that build URLs; this one does not
        server_header=False,
        timeout_keep_alive=30,
    )
