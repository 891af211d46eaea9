"""Sending a call upstream: retries with backoff, the provider's own wait, fallbacks, and a
larger-context model when the request does not fit.

Only a provider's answer of 200 starts a response to the client; until then a failure can be
retried or handed to a fallback -- a whole response cut short, or one that is not the JSON it
should be, included. Each attempt is noted in the call's details (``attempts``) and the call is
recorded once. A refused attempt is not billed by providers; one the provider may have billed
without answering (a timeout while it worked, an answer cut short) gets a row of its own, and
before the first attempt the call's intent is journalled (write-ahead: see ``attempts``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from thrifty.core.prompt_cache import add_breakpoints
from thrifty.core.retry import backoff_delay, is_retryable, provider_wait
from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline.attempts import AttemptLedger
from thrifty.pipeline.call import Call, Result, StreamState
from thrifty.pipeline.conversions import BadUpstreamResponse, conversion_for, error_body
from thrifty.providers.sse import read_events
from thrifty.providers.transport import Timeouts, Transport, TransportError, UpstreamResponse
from thrifty.providers.upstream import Upstream

__all__ = ["Dispatcher", "Route", "Routes", "answered_by"]

log = logging.getLogger("thrifty.dispatch")


@dataclass(frozen=True, slots=True)
class Route:
    """A public model and where it is served."""

    name: str
    upstream: Upstream
    upstream_model: str
    priced_as: str
    context_window: int | None
    max_output_tokens: int | None
    fallbacks: tuple[str, ...]
    capabilities: frozenset[str]


def answered_by(route: Route, **fields: Any) -> Result:
    """A provider's answer (200) from ``route``: who served it and how it is priced, with
    ``fields`` (the body or the events, usage, timings)."""
    return Result(
        status=200,
        served_model=route.name,
        upstream_model=route.upstream_model,
        provider=route.upstream.name,
        provider_id=route.upstream.provider_id,
        priced_as=route.priced_as,
        **fields,
    )


class Routes:
    def __init__(self, routes: Sequence[Route]) -> None:
        self._by_name = {route.name: route for route in routes}
        self._chains = {route.name: self._chain(route.name) for route in routes}

    def get(self, name: str) -> Route | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def chain(self, name: str) -> list[Route]:
        """The model, then its fallbacks depth-first (their own fallbacks included), each once."""
        return self._chains.get(name, [])

    def _chain(self, name: str) -> list[Route]:
        chain: list[Route] = []
        seen: set[str] = set()

        def visit(model: str) -> None:
            route = self._by_name.get(model)
            if route is None or model in seen:
                return
            seen.add(model)
            chain.append(route)
            for fallback in route.fallbacks:
                visit(fallback)

        visit(name)
        return chain


class Pacer(Protocol):
    """Holds calls back by a provider's rate-limit headers (see ``pipeline.ratelimit``)."""

    async def before(self, call: Call, route: Route) -> None: ...

    def observe(self, route: Route, headers: Mapping[str, str]) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int
    attempt_timeout: float
    connect_timeout: float
    backoff_base: float
    backoff_max: float
    retry_after_max: float


def _upstream_auth_failure(call: Call, route: Route, status: int) -> Result:
    """A provider refusing the gateway's own key is a misconfigured gateway (502), not a client
    with a bad key (which thrifty answers 401 itself): the message names the provider and the
    variable its key comes from."""
    where = f"${route.upstream.key_env}" if route.upstream.key_env else "no api_key_env is configured"
    message = (
        f"the provider {route.upstream.name} refused thrifty's credentials for {route.name} ({status}); "
        f"check the provider key ({where})"
    )
    body = error_body(call.client_api, 502, message, "upstream_authentication_error", "upstream_auth_failed")
    return Result(status=502, body=body, error=message, billed=False)


class _Failure:
    """The last failure seen, to answer with when nothing succeeds."""

    def __init__(self) -> None:
        self.status = 502
        self.body: bytes | None = None
        self.message = "no upstream attempt was made"
        self.kind = "api_error"
        self.intended = False
        """The call's intent is journalled (once, before its first attempt)."""


class Dispatcher:
    """The pipeline's last step."""

    def __init__(
        self,
        routes: Routes,
        transport: Transport,
        policy: RetryPolicy,
        counter: TokenCounter,
        random_source: Callable[[], float] = random.random,
        sleep: Callable[[float], Any] = asyncio.sleep,
        prompt_breakpoints: bool = True,
        pacer: Pacer | None = None,
        attempts: AttemptLedger | None = None,
    ) -> None:
        self.routes = routes
        self.transport = transport
        self.policy = policy
        self.counter = counter
        self.random = random_source
        self.sleep = sleep
        self.prompt_breakpoints = prompt_breakpoints
        self.pacer = pacer
        self.attempts = attempts
        # No read timeout for whole responses: the total (the same figure, counted from the start)
        # always expires first, and a read timeout costs a timer reset on every chunk received.
        self._whole_timeout = Timeouts(connect=policy.connect_timeout, total=policy.attempt_timeout)
        self._stream_timeout = Timeouts(connect=policy.connect_timeout, total=None, read=policy.attempt_timeout)

    async def __call__(self, call: Call) -> Result:
        chain = self._fitting(call, self.routes.chain(call.model))
        if isinstance(chain, Result):
            return chain
        attempts: list[dict[str, Any]] = []
        call.details["attempts"] = attempts
        failure = _Failure()
        for index, route in enumerate(chain):
            result = await self._try_route(call, route, attempts, failure)
            if result is not None:
                if result.status != 200:
                    log.warning("call %s: %s; answering %d", call.request_id, failure.message, result.status)
                result.sent = call  # what the record step counts when the provider reports no usage
                return result
            if index + 1 < len(chain):
                log.warning("call %s: %s; falling back to %s", call.request_id, failure.message, chain[index + 1].name)
        if failure.kind != "invalid_request_error":  # not the client's request that no provider could take
            log.warning(
                "call %s: %s; no model left to try, answering %d", call.request_id, failure.message, failure.status
            )
        client_body = (
            failure.body
            if failure.body is not None
            else error_body(call.client_api, failure.status, failure.message, failure.kind)
        )
        return Result(status=failure.status, body=client_body, error=failure.message, billed=False)

    def _estimate(self, route: Route) -> Callable[[str], int]:
        def count(text: str) -> int:
            return self.counter.count_text(text, route.priced_as).input_tokens

        return count

    def _fitting(self, call: Call, chain: list[Route]) -> list[Route] | Result:
        """Drop the models whose context window the request cannot fit. Counting is skipped when
        the body is too small to overflow any of them (a token is at least one byte)."""
        windows = [r.context_window for r in chain if r.context_window is not None]
        if not windows:
            return chain
        max_out = call.request.max_tokens or 0
        size = call.body_size or len(orjson.dumps(call.body))
        if size + max_out <= min(windows):
            return chain
        needed = call.input_tokens.get(chain[0].priced_as)  # a large body's was counted off the loop
        if needed is None:
            needed = call.input_tokens[chain[0].priced_as] = self.counter.count_request(
                call.request, chain[0].priced_as
            ).input_tokens
        fitting = [r for r in chain if r.context_window is None or needed + max_out <= r.context_window]
        if fitting:
            if fitting[0] is not chain[0]:
                call.details["context_fallback"] = f"{needed} input tokens exceed {chain[0].name}'s window"
            return fitting
        message = (
            f"the request needs about {needed} input tokens plus {max_out} output tokens, more than the context "
            f"window of {call.model} and of its fallbacks"
        )
        body = error_body(call.client_api, 400, message, "invalid_request_error", "context_length_exceeded")
        return Result(status=400, body=body, error=message, billed=False)

    async def _try_route(
        self, call: Call, route: Route, attempts: list[dict[str, Any]], failure: _Failure
    ) -> Result | None:
        policy = self.policy
        conversion = conversion_for(call.client_api, route.upstream.wire)
        payload = self._payload(call, route, conversion, attempts, failure)
        if payload is None:
            return None
        url = route.upstream.chat_url(route.upstream_model)
        headers = route.upstream.headers()
        for attempt in range(policy.attempts):
            began = time.perf_counter()
            note: dict[str, Any] = {"model": route.name, "provider": route.upstream.name}
            attempts.append(note)
            if self.pacer is not None:
                await self.pacer.before(call, route)  # the provider's own limits, from its last headers
            if not failure.intended and self.attempts is not None:
                failure.intended = True
                self.attempts.intend(call, route)  # write-ahead: journalled before anything is sent
            timeout = self._stream_timeout if call.stream else self._whole_timeout
            try:  # awaited here, not in a helper: each frame on this path is walked on every resume
                response = await self.transport.post(url, payload, headers, timeout)
            except TransportError as error:
                self._unanswered(call, route, error, began, note, failure)
                await self._retry_pause(call, attempt, None, note, failure)
                continue
            if self.pacer is not None:
                self.pacer.observe(route, response.headers)
            if response.status == 200:
                note.update(status=200)
                if call.stream:
                    return self._stream_result(call, route, response, conversion, began, note)
                result = await self._whole_result(call, route, response, conversion, began, note, failure)
                if result is not None:
                    return result
                await self._retry_pause(call, attempt, None, note, failure)  # cut short or not JSON: as a 5xx
                continue
            raw = await _read_quietly(response)
            note.update(status=response.status, ms=_ms(began))
            failure.status, failure.kind = response.status, "api_error"
            failure.body = conversion.error_body(response.status, raw) if raw else None
            failure.message = f"{route.name}: upstream answered {response.status}"
            if _context_too_long(response.status, raw):
                note["error"] = "context length exceeded"
                return None  # a fallback with a larger window may take it
            if response.status in (401, 403) and route.upstream.own_credentials:  # thrifty's key: say whose
                return _upstream_auth_failure(call, route, response.status)
            if not is_retryable(response.status):
                return Result(status=response.status, body=failure.body or b"", error=failure.message, billed=False)
            wait = provider_wait({k.lower(): v for k, v in response.headers.items()})
            if wait is not None and wait > policy.retry_after_max:
                note["wait_asked_s"] = wait
                return None  # too long to wait here: the fallbacks may answer now
            await self._retry_pause(call, attempt, wait, note, failure)
        return None

    def _payload(
        self, call: Call, route: Route, conversion: Any, attempts: list[dict[str, Any]], failure: _Failure
    ) -> bytes | None:
        """The request in the provider's format; None when it cannot be expressed there."""
        try:
            body = conversion.request_body(call, route.upstream_model, route.max_output_tokens)
            if self.prompt_breakpoints and route.upstream.wire == "anthropic":
                marked = add_breakpoints(body, route.upstream_model, self._estimate(route))
                if marked:
                    call.details["prompt_cache_breakpoints"] = marked
            return orjson.dumps(body)
        except (ValueError, orjson.JSONEncodeError) as error:
            failure.status, failure.body, failure.message = 400, None, str(error)
            failure.kind = "invalid_request_error"
            attempts.append({"model": route.name, "error": str(error)})
            return None

    def _unanswered(
        self, call: Call, route: Route, error: TransportError, began: float, note: dict[str, Any], failure: _Failure
    ) -> None:
        """No answer came: unreachable (nothing billed), or timed out while the provider worked."""
        note.update(error=str(error), ms=_ms(began))
        failure.status, failure.body, failure.kind = 502, None, "api_error"
        if error.may_be_billed:
            failure.message = f"{route.name}: no answer within {self.policy.attempt_timeout:g} s"
            self._lost(call, route, "timeout", failure.message, note)
        else:
            failure.message = f"{route.name}: upstream unreachable: {error}"

    async def _retry_pause(
        self, call: Call, attempt: int, wait: float | None, note: dict[str, Any], failure: _Failure
    ) -> None:
        """Before the next attempt, if there is one: the provider's wait, else backoff."""
        policy = self.policy
        if attempt + 1 >= policy.attempts:
            return
        if wait is None:
            wait = backoff_delay(attempt, policy.backoff_base, policy.backoff_max, self.random)
        delay = wait
        note["retry_in_s"] = round(delay, 3)
        log.warning(
            "call %s: %s; retry %d of %d in %.2f s",
            call.request_id,
            failure.message,
            attempt + 1,
            policy.attempts - 1,
            delay,
        )
        await self.sleep(delay)

    async def _whole_result(
        self,
        call: Call,
        route: Route,
        response: UpstreamResponse,
        conversion: Any,
        began: float,
        note: dict[str, Any],
        failure: _Failure,
    ) -> Result | None:
        """The answer, or None when it was cut short or is not a response (noted in ``failure``;
        the provider answered, so it billed: the attempt gets its own row)."""
        first_byte = time.perf_counter()
        try:
            raw = await response.read()
        except TransportError as error:
            note.update(error=f"response cut short: {error}", ms=_ms(began))
            failure.status, failure.body, failure.message = 502, None, f"{route.name}: response cut short"
            self._lost(call, route, "timeout" if error.timeout else "incomplete", note["error"], note)
            return None
        try:
            body, usage, text = conversion.response_body(raw, route.name)
        except BadUpstreamResponse as error:
            note.update(error=str(error), ms=_ms(began))
            failure.status, failure.body, failure.message = 502, None, f"{route.name}: {error}"
            self._lost(call, route, "incomplete", str(error), note)
            return None
        note["ms"] = _ms(began)
        return answered_by(
            route,
            body=body,
            usage=usage,
            first_byte_at=first_byte,
            output_text=text if usage is None else None,
        )

    def _lost(self, call: Call, route: Route, status: str, error: str, note: dict[str, Any]) -> None:
        if self.attempts is not None:
            note["cost_lower_bound"] = True
            self.attempts.lost(call, route, status, error, note)

    def _stream_result(
        self,
        call: Call,
        route: Route,
        response: UpstreamResponse,
        conversion: Any,
        began: float,
        note: dict[str, Any],
    ) -> Result:
        state = StreamState()
        translator = conversion.stream(call, state)

        async def events() -> AsyncIterator[bytes]:
            try:
                async for event in read_events(response.lines()):
                    out = translator.feed(event)
                    if out:
                        yield out
                tail = translator.finish()
                if tail:
                    yield tail
            except TransportError as error:
                state.error = f"upstream stream broke: {error}"
                yield _stream_error(call, state.error)
            except GeneratorExit:
                state.client_disconnected = True
                raise
            finally:
                note["ms"] = _ms(began)
                response.close()  # closing (not releasing) stops the provider generating

        return answered_by(
            route,
            events=events(),
            stream_state=state,
            first_byte_at=time.perf_counter(),
        )


def _stream_error(call: Call, message: str) -> bytes:
    if call.client_api == "anthropic":
        payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    return (
        b"data: " + orjson.dumps({"error": {"message": message, "type": "api_error", "code": "stream_error"}}) + b"\n\n"
    )


async def _read_quietly(response: UpstreamResponse) -> bytes:
    try:
        return await response.read()
    except TransportError:
        return b""


def _context_too_long(status: int, raw: bytes) -> bool:
    if status not in (400, 413) or not raw:
        return False
    text = raw[:2000].lower()
    return b"context_length_exceeded" in text or b"prompt is too long" in text or b"maximum context length" in text


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def headers_lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
