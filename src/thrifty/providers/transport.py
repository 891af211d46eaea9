"""The seam between the dispatchers and HTTP: post a request, read the answer whole or line by
line. ``AiohttpTransport`` is the product's, over one pooled client; ``MemoryTransport`` answers
from a function, for unit tests of retries, fallbacks and timeouts without a server.

Every failure to get a (whole) answer is a ``TransportError`` that says whether the provider may
have received the request and be working on it (billing it): a timeout waiting for the answer,
or an answer cut short. A refused or timed-out connection sent nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from thrifty.errors import TransportError

__all__ = [
    "AiohttpTransport",
    "MemoryResponse",
    "MemoryTransport",
    "Timeouts",
    "Transport",
    "TransportError",
    "UpstreamResponse",
]


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    total: float | None
    """The whole attempt (a non-streaming one); None: no limit."""
    read: float | None = None
    """The wait for each next byte (a stream); None: no limit."""


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body (then the connection goes back to the pool)."""
        ...

    def lines(self) -> AsyncIterator[bytes]:
        """The body line by line, each ending in ``\\n`` (an event stream)."""
        ...

    def release(self) -> None:
        """Done with it: the connection goes back to the pool."""

    def close(self) -> None:
        """Abandon it: the connection is closed, which stops a provider generating."""


class Transport(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeouts: Timeouts) -> UpstreamResponse:
        """The provider's answer once its status and headers are in; raises ``TransportError``."""
        ...

    async def close(self) -> None: ...


def _failure(error: BaseException, *, sent: bool) -> TransportError:
    text = str(error) or type(error).__name__
    timeout = isinstance(error, TimeoutError)
    connecting = isinstance(error, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError)
    return TransportError(
        text if len(text) < 200 else text[:200] + "...",
        timeout=timeout,
        may_be_billed=sent or (timeout and not connecting),
    )


class _AiohttpResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _failure(error, sent=True) from error
        finally:
            self._response.release()

    async def lines(self) -> AsyncIterator[bytes]:
        try:
            async for line in self._response.content:
                yield line
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _failure(error, sent=True) from error

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        self._response.close()


class AiohttpTransport:
    """One pooled aiohttp client for every provider; made on the event loop that uses it."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}
        """One aiohttp timeout object per distinct setting, not one a request."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeouts: Timeouts) -> UpstreamResponse:
        timeout = self._timeouts.get(timeouts)
        if timeout is None:
            timeout = self._timeouts[timeouts] = aiohttp.ClientTimeout(
                total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.read
            )
        try:
            response = await self.session.post(url, data=body, headers=headers, timeout=timeout)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _failure(error, sent=False) from error
        return _AiohttpResponse(response)

    async def close(self) -> None:
        await self.session.close()


@dataclass
class MemoryResponse:
    """An answer in memory: a ``body``, or ``chunks`` of a stream; ``fail_after`` chunks, the
    stream (or the body's read) breaks as a connection would."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: Sequence[bytes] = ()
    fail_after: int | None = None
    released: bool = False
    closed: bool = False

    async def read(self) -> bytes:
        self.released = True
        if self.fail_after is not None:
            raise TransportError("response cut short", timeout=False, may_be_billed=True)
        return self.body

    async def lines(self) -> AsyncIterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            if self.fail_after is not None and index >= self.fail_after:
                raise TransportError("stream broke", timeout=False, may_be_billed=True)
            for line in chunk.splitlines(keepends=True):
                yield line
            await asyncio.sleep(0)

    def release(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


@dataclass
class MemoryTransport:
    """Answers each post with ``answer(url, body, headers)``: a ``MemoryResponse``, or raise a
    ``TransportError`` to act out a refused connection or a timeout. Every request is kept."""

    answer: Callable[[str, bytes, Mapping[str, str]], Awaitable[MemoryResponse]]
    sent: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeouts: Timeouts) -> UpstreamResponse:
        self.sent.append((url, body, dict(headers)))
        return await self.answer(url, body, headers)

    async def close(self) -> None:
        return None
