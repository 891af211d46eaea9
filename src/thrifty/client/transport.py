"""HTTP transports that the official SDKs use unchanged: chat and embeddings calls go through
thrifty's pipelines (priced, recorded, cached, under budgets); everything else (files, models, ...)
goes straight through."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import Future
from typing import Any, Literal

import httpx2

from thrifty.client.runtime import InProcessRuntime
from thrifty.core.messages import RequestError
from thrifty.core.pricing import PriceBook, UnknownModelError
from thrifty.errors import error_response
from thrifty.gateway.embeddings import embeddings_call
from thrifty.gateway.intake import (
    Binding,
    Rejection,
    attribution,
    build_call,
    cache_headers,
    decode_json,
    new_request_id,
)
from thrifty.pipeline import Call, Result
from thrifty.pipeline.call import ClientAPI
from thrifty.pipeline.steps.dispatch import Route
from thrifty.providers.upstream import Upstream
from thrifty.wire.openai_responses import as_responses, responses_to_chat

__all__ = ["AsyncThriftyTransport", "ThriftyTransport"]

_HOP_HEADERS = frozenset({"host", "content-length", "accept-encoding", "connection", "transfer-encoding"})
Endpoint = ClientAPI | Literal["embeddings", "responses"]
_ENDPOINTS: tuple[tuple[str, Endpoint], ...] = (
    ("/chat/completions", "openai"),
    ("/v1/messages", "anthropic"),
    ("/embeddings", "embeddings"),
    ("/responses", "responses"),
)


_OFFICIAL_HOSTS = {"api.openai.com": "openai", "api.anthropic.com": "anthropic"}


class _FixedUpstream(Upstream):
    """The provider the SDK was pointed at: the exact URL it built (Azure query string included).

    Only the providers' own hosts pin the price catalogue's provider: an OpenAI-compatible host
    (OpenRouter, vLLM, LiteLLM, a local server) serves many providers' models, so a model is priced
    as its own provider's (``claude-haiku-4-5`` as Anthropic's) and the ledger names that provider,
    not the host."""

    def __init__(self, url: str, client: ClientAPI, headers: Mapping[str, str], prices: PriceBook, model: str) -> None:
        host = httpx2.URL(url).host or "upstream"
        pinned = _OFFICIAL_HOSTS.get(host) or ("azure" if host.endswith(".openai.azure.com") else None)
        name = pinned or _catalogue_provider(prices, model) or host
        super().__init__(name, client, url, headers)
        self._url = url
        self._provider_id = pinned
        self.own_credentials = False  # the SDK's own key: a 401 is the caller's, as without thrifty

    @property
    def provider_id(self) -> str | None:
        return self._provider_id

    def chat_url(self, upstream_model: str) -> str:
        return self._url

    def embeddings_url(self, upstream_model: str) -> str:
        return self._url


def _catalogue_provider(prices: PriceBook, model: str) -> str | None:
    """The provider the price catalogue knows ``model`` by, when it knows it at all."""
    try:
        return prices.quote(model).provider
    except UnknownModelError:
        return None


def _endpoint(request: httpx2.Request) -> Endpoint | None:
    if request.method != "POST":
        return None
    path = request.url.path
    for suffix, api in _ENDPOINTS:
        if path.endswith(suffix):
            return api
    return None


_SDK_DEFAULT_TIMEOUT = {"connect": 5.0, "read": 600.0, "write": 600.0, "pool": 600.0}
"""What both SDKs send when their user set no timeout: thrifty's own ``retry:`` timeouts apply then."""


def _attempt_timeout(request: httpx2.Request) -> float | None:
    """The SDK client's (or the call's) ``timeout=``: each attempt's limit, as it is in the SDK."""
    timeout = request.extensions.get("timeout")
    if not isinstance(timeout, dict) or timeout == _SDK_DEFAULT_TIMEOUT:
        return None
    read = timeout.get("read")
    return float(read) if isinstance(read, int | float) and read > 0 else None


class _Prepared:
    def __init__(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.status, self.body, self.headers = status, body, headers


def _prepare(
    runtime: InProcessRuntime,
    request: httpx2.Request,
    endpoint: Endpoint,
    defaults: Mapping[str, str],
    binding: Binding | None,
) -> tuple[Call, Route, dict[str, Any] | None] | _Prepared:
    """The call, its route, and for a Responses API request the body as the SDK sent it (the
    call is its chat equivalent, sent to the same host's chat completions endpoint)."""
    request_id = new_request_id()
    started = time.perf_counter()
    headers = {k.lower(): v for k, v in request.headers.items()}
    for name, value in defaults.items():
        headers.setdefault(name, value)
    directives = {k.encode(): v.encode() for k, v in headers.items() if k.startswith("x-thrifty-")}
    client: ClientAPI = "anthropic" if endpoint == "anthropic" else "openai"
    upstream_headers = {k: v for k, v in headers.items() if k not in _HOP_HEADERS and not k.startswith("x-thrifty-")}

    url = str(request.url)
    if endpoint == "responses":  # run as the equivalent chat request, on the same host
        parsed = request.url
        url = str(parsed.copy_with(path=parsed.path.removesuffix("/responses") + "/chat/completions"))

    def route_of(model: str) -> Route:
        upstream = _FixedUpstream(url, client, upstream_headers, runtime.prices, model)
        return Route(
            name=model,
            upstream=upstream,
            upstream_model=model,
            priced_as=model,
            context_window=None,
            max_output_tokens=None,
            fallbacks=(),
            capabilities=frozenset(),
        )

    try:
        body = decode_json(request.content)
        if endpoint == "embeddings":
            who = attribution(directives, body, "openai", binding)
            call, route = embeddings_call(
                body, route_of, runtime.counter, request_id, started, who, len(request.content)
            )
            directive, version = cache_headers(directives)
            call = call.replace(cache_directive=directive, cache_version=version)
            return call, route, None
        original = None
        if endpoint == "responses":
            original = body
            try:
                body = responses_to_chat(original)
            except RequestError as error:
                raise Rejection(400, str(error), code="invalid_request") from None
        call = build_call(directives, body, client, binding, request_id, started)
        if original is not None:
            call.details["endpoint"] = "responses"
    except Rejection as rejection:
        status, payload = error_response(rejection, client)
        return _Prepared(status, payload, [("x-thrifty-request-id", request_id)])
    return call, route_of(call.model), original


def _as_responses(result: Result, original: dict[str, Any] | None) -> None:
    """A Responses API request's chat answer, whole or streamed, as the Responses API gives it."""
    if original is not None:
        result.body, result.events = as_responses(result.status, result.body, result.events, original)


def _response_headers(call: Call, call_model: str, result: Result) -> list[tuple[str, str]]:
    headers = [
        ("content-type", "text/event-stream" if result.events is not None else "application/json"),
        ("x-thrifty-request-id", call.request_id),
        ("x-thrifty-model", result.served_model or call_model),
        ("x-thrifty-cache", result.cache_status or call.cache_status),
    ]
    headers += [(k.decode(), v.decode()) for k, v in result.headers]
    return headers


class _SyncEvents(httpx2.SyncByteStream):
    def __init__(self, runtime: InProcessRuntime, events: AsyncIterator[bytes]) -> None:
        self.runtime, self.events = runtime, events

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                yield self.runtime.next_chunk(self.events).result()
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self.runtime.close_stream(self.events).result()


class _AsyncEvents(httpx2.AsyncByteStream):
    def __init__(self, runtime: InProcessRuntime, events: AsyncIterator[bytes]) -> None:
        self.runtime, self.events = runtime, events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            try:
                yield await asyncio.wrap_future(self.runtime.next_chunk(self.events))
            except StopAsyncIteration:
                return

    async def aclose(self) -> None:
        await asyncio.wrap_future(self.runtime.close_stream(self.events))


class ThriftyTransport(httpx2.BaseTransport):
    def __init__(
        self,
        runtime: InProcessRuntime,
        inner: httpx2.BaseTransport,
        defaults: Mapping[str, str] | None = None,
        binding: Binding | None = None,
    ) -> None:
        self.runtime, self.inner, self.defaults = runtime, inner, dict(defaults or {})
        self.binding = binding

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        client = _endpoint(request)
        if client is None:
            return self.inner.handle_request(request)
        request.read()
        prepared = _prepare(self.runtime, request, client, self.defaults, self.binding)
        if isinstance(prepared, _Prepared):
            return httpx2.Response(prepared.status, headers=prepared.headers, content=prepared.body, request=request)
        call, route, original = prepared
        result = self.runtime.run(call, route, _attempt_timeout(request), embeddings=client == "embeddings").result()
        _as_responses(result, original)
        headers = _response_headers(call, route.name, result)
        if result.events is None:
            return httpx2.Response(result.status, headers=headers, content=result.body or b"", request=request)
        return httpx2.Response(
            result.status, headers=headers, stream=_SyncEvents(self.runtime, result.events), request=request
        )

    def close(self) -> None:
        self.inner.close()


class AsyncThriftyTransport(httpx2.AsyncBaseTransport):
    def __init__(
        self,
        runtime: InProcessRuntime,
        inner: httpx2.AsyncBaseTransport,
        defaults: Mapping[str, str] | None = None,
        binding: Binding | None = None,
    ) -> None:
        self.runtime, self.inner, self.defaults = runtime, inner, dict(defaults or {})
        self.binding = binding

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        client = _endpoint(request)
        if client is None:
            return await self.inner.handle_async_request(request)
        await request.aread()
        prepared = _prepare(self.runtime, request, client, self.defaults, self.binding)
        if isinstance(prepared, _Prepared):
            return httpx2.Response(prepared.status, headers=prepared.headers, content=prepared.body, request=request)
        call, route, original = prepared
        # Shielded: a caller that gives up (asyncio.wait_for, a cancelled task) does not cancel
        # the call, which may already be billed upstream; it goes on and is priced and recorded,
        # as a gateway records a call whose client left before the answer.
        running = self.runtime.run(call, route, _attempt_timeout(request), embeddings=client == "embeddings")
        try:
            result = await asyncio.shield(asyncio.wrap_future(running))
        except asyncio.CancelledError:
            running.add_done_callback(self._abandoned)
            raise
        _as_responses(result, original)
        headers = _response_headers(call, route.name, result)
        if result.events is None:
            return httpx2.Response(result.status, headers=headers, content=result.body or b"", request=request)
        return httpx2.Response(
            result.status, headers=headers, stream=_AsyncEvents(self.runtime, result.events), request=request
        )

    def _abandoned(self, running: Future[Result]) -> None:
        """The caller gave up: a stream nobody will read is closed (recorded as the client's leaving)."""
        if running.cancelled() or running.exception() is not None:
            return
        events = running.result().events
        if events is not None:
            self.runtime.abandon_stream(events)

    async def aclose(self) -> None:
        await self.inner.aclose()
