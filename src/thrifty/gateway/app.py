"""The gateway: OpenAI- and Anthropic-compatible HTTP endpoints in front of the pipeline.

A thin face: it reads and checks the request, hands a ``Call`` to the pipeline, and writes the
``Result`` back (whole, or as a stream it stops pulling the moment the client goes away).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from thrifty.core.messages import RequestError
from thrifty.errors import error_response
from thrifty.gateway.access import Exchange
from thrifty.gateway.auth import presented_secret
from thrifty.gateway.batches import GatewayBatches
from thrifty.gateway.catalog import Catalog, unknown_model, unknown_route, wants_anthropic_shape
from thrifty.gateway.embeddings import handle_embeddings
from thrifty.gateway.feedback import handle_feedback
from thrifty.gateway.intake import (
    Binding,
    Rejection,
    attribution,
    build_call,
    decode_json,
    directives_of,
    new_request_id,
)
from thrifty.gateway.monitoring import trace_call, traced_answer
from thrifty.gateway.runtime import Runtime
from thrifty.pipeline.call import Call, ClientAPI, Result
from thrifty.web.asgi import (
    BodyTooLarge,
    BodyTooSlow,
    ClientGone,
    Receive,
    Scope,
    Send,
    disconnect_watcher,
    header,
    json_response,
    read_body,
    send_response,
    start_stream,
    stream_chunk,
)
from thrifty.wire.openai_responses import as_responses, responses_to_chat

__all__ = ["Gateway"]

log = logging.getLogger("thrifty.gateway")
_T = TypeVar("_T")

_JSON = b"application/json"


class Gateway:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._catalog = Catalog(runtime.routes, runtime.counter)
        self._batches = GatewayBatches(runtime)
        self._parsing = asyncio.Lock()
        """Held while a large body is parsed and counted on a worker thread: one at a time. The work
        holds the GIL, so two such threads would make the event loop wait twice as long for its
        turn; the others wait here, costing the loop nothing."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except Exception as error:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        request_id = new_request_id()
        started = time.perf_counter()
        anthropic = path.startswith("/v1/messages") or (path.startswith("/v1/models") and wants_anthropic_shape(scope))
        client: ClientAPI = "anthropic" if anthropic else "openai"
        if path in ("/healthz", "/health", "/readyz", "/metrics"):  # probes, scrapes: not worth a line
            exchange = None
        else:
            exchange = Exchange(request_id, scope["method"], path, started)
            if exchange.logged:  # --no-access-log: nothing watched, nothing to pay for
                send = exchange.watching(send)
        try:
            if path in ("/healthz", "/health"):
                keys = self.runtime.keys
                health = {"status": "ok", "keys": {"required": keys.required, "why": keys.why}}
                await json_response(send, 200, health, [_id_header(request_id)])
            elif path == "/readyz":
                ready, why = self._readiness()
                await json_response(
                    send, 200 if ready else 503, {"ready": ready, "checks": why}, [_id_header(request_id)]
                )
            elif path == "/metrics":  # scraped without a key, as probes are (it holds no secrets)
                from thrifty.gateway.monitoring import handle_metrics

                await handle_metrics(self.runtime, scope["method"], send, [_id_header(request_id)])
            elif path.startswith("/admin/budgets"):  # its own token, checked before the body is read
                from thrifty.gateway.admin import handle_admin

                await handle_admin(self.runtime, scope, receive, send, request_id)
            else:  # the key first: nothing of a request is read or answered before it is checked
                binding = await self._authenticate(scope)
                assert exchange is not None
                await self._route(scope, receive, send, client, exchange, binding)
        except Rejection as rejection:
            await _reject(send, client, request_id, rejection)
        except ClientGone:
            if exchange is not None and exchange.status is None:
                exchange.status = 499  # as nginx logs it: the client closed the connection first
        except Exception:  # a bug of ours: logged in full, answered without internals
            log.exception("request %s failed", request_id)
            with contextlib.suppress(Exception):
                await _reject(send, client, request_id, Rejection(500, "internal error in the gateway", "api_error"))
        finally:
            if exchange is not None:
                exchange.log()

    async def _route(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        client: ClientAPI,
        exchange: Exchange,
        binding: Binding | None,
    ) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        request_id, started = exchange.request_id, exchange.started
        if path in ("/v1/chat/completions", "/v1/messages"):
            if method != "POST":
                raise Rejection(405, f"{path} takes POST")
            await self._chat(scope, receive, send, client, exchange, binding)
        elif path == "/v1/responses":
            if method != "POST":
                raise Rejection(405, f"{path} takes POST")
            await self._chat(scope, receive, send, "openai", exchange, binding, responses=True)
        elif path == "/v1/embeddings":
            if method != "POST":
                raise Rejection(405, f"{path} takes POST")
            body, size = await self._read_json(scope, receive)
            directives = directives_of(scope["headers"])
            who = attribution(directives, body, "openai", binding)
            model = body.get("model")
            exchange.model, exchange.attribution = model if isinstance(model, str) else None, who
            status, payload, headers = await handle_embeddings(
                self.runtime, directives, body, request_id, started, who, size
            )
            await send_response(send, status, payload, [*headers, _id_header(request_id)], _JSON)
        elif path == "/v1/messages/count_tokens":
            if method != "POST":
                raise Rejection(405, f"{path} takes POST")
            body, _ = await self._read_json(scope, receive)
            count, headers = self._catalog.count_tokens(body)
            await json_response(send, 200, count, [*headers, _id_header(request_id)])
        elif path.startswith(("/v1/files", "/v1/batches")) and path.count("/") >= 2:
            await self._batches.handle(scope, receive, send, binding, request_id)
        elif path == "/v1/thrifty/feedback":
            if method != "POST":
                raise Rejection(405, f"{path} takes POST")
            body, _ = await self._read_json(scope, receive)
            outcome = await handle_feedback(self.runtime, body, binding)
            await json_response(send, 200, outcome, [_id_header(request_id)])
        elif path == "/v1/models" and method == "GET":
            models = self._catalog.models(client == "anthropic")
            await json_response(send, 200, models, [_id_header(request_id)])
        elif path.startswith("/v1/models/") and method == "GET":
            model = self._catalog.model(path.removeprefix("/v1/models/"), client == "anthropic")
            await json_response(send, 200, model, [_id_header(request_id)])
        else:
            raise unknown_route(method, path)

    async def _read_json(self, scope: Scope, receive: Receive) -> tuple[dict[str, Any], int]:
        raw = await self._read_body(scope, receive)
        if len(raw) > self.runtime.config.server.offload_bytes:
            return await self._off_loop(self._decode, raw), len(raw)
        return self._decode(raw), len(raw)

    async def _off_loop(self, work: Callable[..., _T], *args: Any) -> _T:
        """``work(*args)`` on a worker thread, one such at a time (see ``_parsing``)."""
        async with self._parsing:
            return await asyncio.to_thread(work, *args)

    def _parse_call(
        self,
        raw: bytes,
        scope: Scope,
        client: ClientAPI,
        binding: Binding | None,
        request_id: str,
        started: float,
        count: bool,
        responses: bool = False,
    ) -> tuple[Call, dict[str, Any]]:
        """The call in ``raw`` and the body as the client sent it; with ``count``, its input
        tokens for its model are counted now too (off the loop, for a large body), so the
        pipeline's steps find them counted. ``responses``: a Responses API body, run as the
        equivalent chat request."""
        directives = directives_of(scope["headers"])
        sent = self._decode(raw)
        body = sent
        if responses:
            try:
                body = responses_to_chat(sent)
            except RequestError as error:
                raise Rejection(400, str(error), code="invalid_request") from None
            self._check_size(body)
        call = build_call(directives, body, client, binding, request_id, started, len(raw))
        if responses:
            call.details["endpoint"] = "responses"
        route = self.runtime.routes.get(call.model) if count else None
        if route is not None:
            counted = self.runtime.counter.count_request(call.request, route.priced_as)
            call.input_tokens[route.priced_as] = counted.input_tokens
        return call, sent

    def _decode(self, raw: bytes) -> dict[str, Any]:
        return self._check_size(decode_json(raw))

    def _check_size(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        max_messages = self.runtime.config.server.max_messages
        if isinstance(messages, list) and len(messages) > max_messages:
            raise Rejection(
                413,
                f"messages: {len(messages):,} messages, more than this gateway takes in one request "
                f"({max_messages:,}; server.max_messages)",
                kind="request_too_large",
            )
        return body

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        content_type = header(scope, b"content-type")
        if content_type is not None and not content_type.split(b";")[0].strip().lower().endswith(b"json"):
            raise Rejection(415, f"unsupported content type {content_type.decode('latin-1')!r}; send application/json")
        server = self.runtime.config.server
        try:
            raw = await read_body(receive, server.max_body_bytes, server.body_timeout_s)
        except BodyTooLarge as error:
            raise Rejection(413, str(error), kind="request_too_large") from None
        except BodyTooSlow as error:
            raise Rejection(408, f"{error} (server.body_timeout_s)", code="request_timeout") from None
        return raw

    async def _authenticate(self, scope: Scope) -> Binding | None:
        keys = self.runtime.keys
        if not keys.required:
            return None  # a private gateway (or auth: none): the headers attribute calls
        secret = presented_secret(scope)
        info = await keys.check(secret)
        if info is None:
            message = "a valid thrifty key is required" if secret is None else "invalid or revoked thrifty key"
            raise Rejection(401, message, kind="authentication_error", code="invalid_api_key")
        return Binding.of_key(info)

    async def _chat(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        client: ClientAPI,
        exchange: Exchange,
        binding: Binding | None,
        *,
        responses: bool = False,
    ) -> None:
        request_id, started = exchange.request_id, exchange.started
        raw = await self._read_body(scope, receive)
        parse = self._parse_call
        if len(raw) > self.runtime.config.server.offload_bytes:  # decoded, parsed and counted off the loop
            call, sent = await self._off_loop(parse, raw, scope, client, binding, request_id, started, True, responses)
        else:
            call, sent = parse(raw, scope, client, binding, request_id, started, False, responses)
        exchange.model, exchange.attribution, exchange.stream = call.model, call.attribution, call.stream
        if exchange.logged:
            call.cost_listeners.append(exchange.cost_listener)
        if self.runtime.routes.get(call.model) is None:
            raise unknown_model(call.model, self.runtime.routes.names())
        pipeline = self.runtime.pipeline
        assert pipeline is not None, "the gateway has not started"
        spans = self.runtime.telemetry.spans
        if spans is not None:
            trace_call(spans, scope, call, sent)
        result = await pipeline.run(call)
        if spans is not None:
            traced_answer(spans, call, result)
        headers = [
            _id_header(request_id),
            (b"x-thrifty-model", (result.served_model or call.model).encode()),
            (b"x-thrifty-cache", (result.cache_status or call.cache_status).encode()),
            *result.headers,
        ]
        if responses:  # the chat answer, whole or streamed, as the Responses API gives it
            result.body, result.events = as_responses(result.status, result.body, result.events, sent)
        if result.events is None:
            await send_response(send, result.status, result.body or b"", headers, _JSON)
            return
        await _stream(receive, send, result, headers)

    def _readiness(self) -> tuple[bool, dict[str, str]]:
        problem = self.runtime.writer.health() if self.runtime.started else None
        checks = {"started": "ok" if self.runtime.started else "starting", "ledger": problem or "ok"}
        return all(v == "ok" for v in checks.values()), checks


async def _stream(receive: Receive, send: Send, result: Result, headers: list[tuple[bytes, bytes]]) -> None:
    events = result.events
    assert events is not None
    watcher = disconnect_watcher(receive)
    await start_stream(send, result.status, headers)
    try:
        async for chunk in events:
            if watcher.done():
                break  # the client left: stop pulling; closing the stream closes the upstream
            await stream_chunk(send, chunk)
        else:
            await stream_chunk(send, b"", more=False)
    finally:
        watcher.cancel()
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
        await asyncio.gather(watcher, return_exceptions=True)


async def _reject(send: Send, client: ClientAPI, request_id: str, rejection: Rejection) -> None:
    status, body = error_response(rejection, client)
    headers = [_id_header(request_id)]
    if status in (408, 413):  # the rest of the body is not read: the connection ends here
        headers.append((b"connection", b"close"))
    await send_response(send, status, body, headers, _JSON)


def _id_header(request_id: str) -> tuple[bytes, bytes]:
    return (b"x-thrifty-request-id", request_id.encode())
