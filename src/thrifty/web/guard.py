"""Connection limits the ASGI app cannot set itself: a time limit on a request's headers (uvicorn
has none, so a client sending a byte every few seconds holds a connection for ever: slowloris), a
cap on the size of a request's headers (httptools has none: a 2 MB header was read whole), a cap on
connections per client address and in total, and the HTTP layer's own 400s in JSON rather than
plain text, in the error shape of the API the request line names (Anthropic's for /v1/messages,
OpenAI's otherwise). Each served socket gets its own ``ConnectionGuard``; nothing is
process-global."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from thrifty.config.gateway import ServerSpec

__all__ = ["ConnectionGuard", "guarded_protocol", "uvicorn_config"]


_LINGER_S = 1.0
"""After an error answer, how long the rest of the request is read and dropped before the connection
closes: closing with unread input resets it, and the client may lose the answer before reading it."""


def _error_response(status: int, reason: str, message: str, kind: str, *, anthropic: bool = False) -> bytes:
    if anthropic:
        body = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    else:
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
    max_header_bytes: int = 64 * 1024
    by_client: dict[str, int] = field(default_factory=dict)
    total: int = 0
    refused: int = 0
    timed_out: int = 0
    too_large: int = 0

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
        _thrifty_in_headers = True
        """Whether the current request's headers are still arriving."""
        _thrifty_received = 0
        """Bytes received while they were (a header still arriving is held whole by the parser)."""
        _thrifty_header_bytes = 0
        """Bytes of the current request's complete headers."""
        _thrifty_answered = False
        """An error answer went out: the rest of the connection's input is dropped."""

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

        def data_received(self, data: bytes) -> None:
            if self._thrifty_answered:
                return
            super().data_received(data)
            if self._thrifty_in_headers and not self._thrifty_answered:
                self._thrifty_received += len(data)
                if self._thrifty_received > guard.max_header_bytes:
                    self._headers_too_large(None)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._thrifty_in_headers, self._thrifty_received, self._thrifty_header_bytes = True, 0, 0
            self._start_header_timer()  # the next request on a kept-alive connection, too

        def on_url(self, url: bytes) -> None:
            if not self._thrifty_answered:
                self._thrifty_header_bytes += len(url)
                super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._thrifty_answered:
                return
            self._thrifty_header_bytes += len(name) + len(value) + 4  # ": " and CRLF
            if self._thrifty_header_bytes > guard.max_header_bytes:
                self._headers_too_large(name)
                return
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._thrifty_in_headers = False
            self._stop_header_timer()
            if not self._thrifty_answered:
                super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._thrifty_answered:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._thrifty_answered:
                super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            if self._thrifty_client is not None:
                guard.release(self._thrifty_client)
                self._thrifty_client = None
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            self._refuse(400, "Bad Request", msg)

        def _refuse(self, status: int, reason: str, message: str) -> None:
            """An error answer in the shape of the API the request line names, then the rest of the
            request is read and dropped for ``_LINGER_S`` and the connection closed."""
            if self._thrifty_answered:
                return
            self._thrifty_answered = True
            self._stop_header_timer()
            anthropic = (getattr(self, "url", None) or b"").startswith(b"/v1/messages")
            response = _error_response(status, reason, message, "invalid_request_error", anthropic=anthropic)
            self.transport.write(response)
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(_LINGER_S, self.transport.close)

        def _headers_too_large(self, name: bytes | None) -> None:
            guard.too_large += 1
            limit = f"{guard.max_header_bytes:,} bytes (server.max_header_bytes)"
            if name is None:
                message = f"the request line and headers come to more than {limit}"
            else:
                shown = name.decode("latin-1")[:64]
                message = f"header {shown}: the request line and headers come to more than {limit}"
            self._refuse(431, "Request Header Fields Too Large", message)

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
            self._refuse(408, "Request Timeout", message)

    return GuardedHttpToolsProtocol


def uvicorn_config(
    app: object, server: ServerSpec, *, log_level: str = "warning", drain_timeout_s: float | None = None
) -> uvicorn.Config:
    """How the gateway is served: httptools under ``server:``'s connection limits. ``drain_timeout_s``:
    how long a shutdown waits for requests in flight (streams included) before cancelling them;
    None: as long as they take."""
    guard = ConnectionGuard(
        max_connections=server.max_connections,
        max_per_client=server.max_connections_per_client,
        header_timeout_s=server.header_timeout_s,
        max_header_bytes=server.max_header_bytes,
    )
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=guarded_protocol(guard),
        lifespan="on",
        log_level=log_level,
        log_config=None,  # uvicorn's lines go through the process's own handler and format (text or JSON)
        access_log=False,  # thrifty writes its own (thrifty.access), with the call's model, cache and cost
        proxy_headers=False,  # X-Forwarded-* rewriting is for apps that build URLs; this one does not
        server_header=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=drain_timeout_s,  # type: ignore[arg-type]  # typed int; used as wait_for's timeout
    )
