"""The little of ASGI that thrifty's servers need, with no framework in between.

A framework's routing and request objects cost tens of microseconds a request; the gateway's
budget for everything it adds is one millisecond, so its faces speak ASGI directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from thrifty.errors import BodyTooLarge, BodyTooSlow, ClientGone

__all__ = [
    "ASGIApp",
    "BodyTooLarge",
    "BodyTooSlow",
    "ClientGone",
    "Headers",
    "Receive",
    "Scope",
    "Send",
    "disconnect_watcher",
    "header",
    "json_response",
    "read_body",
    "send_response",
    "start_stream",
    "stream_chunk",
    "wait_for_disconnect",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_JSON = (b"content-type", b"application/json")
_SSE = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies in front not to buffer the stream
]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header; ``name`` in lower case."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(receive: Receive, limit: int, timeout_s: float | None = None) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes without reading them all, and a
    body that takes longer than ``timeout_s`` to arrive (a client trickling it holds a connection)."""
    if timeout_s is None:
        return await _read_body(receive, limit)
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_body(receive, limit)
    except TimeoutError:
        raise BodyTooSlow(timeout_s) from None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_response(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = (), content_type: bytes | None = None
) -> None:
    raw: Headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        raw.append((b"content-type", content_type))
    raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def json_response(send: Send, status: int, payload: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = orjson.dumps(payload)
    await send_response(send, status, body, headers, content_type=_JSON[1])


async def start_stream(send: Send, status: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*_SSE, *headers]})


async def stream_chunk(send: Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def wait_for_disconnect(receive: Receive) -> None:
    """Returns when the client goes away (call only after the body has been read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def disconnect_watcher(receive: Receive) -> asyncio.Task[None]:
    return asyncio.ensure_future(wait_for_disconnect(receive))
