"""``POST /v1/embeddings``: forwarded to an OpenAI-format provider, priced and recorded, and held
to the same budgets, plans and rate limits as chat: the input's tokens are counted exactly and
reserved before the provider is asked (embeddings bill input only), then settled to the cost."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from thrifty.core import _validate as v
from thrifty.core.ledger import LedgerRecord
from thrifty.core.messages import ChatRequest, RequestError
from thrifty.core.pricing import Cost, UnknownModelError, format_usd
from thrifty.core.retry import backoff_delay, is_retryable, provider_wait
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage, UsageError
from thrifty.gateway.intake import Rejection
from thrifty.gateway.runtime import Runtime
from thrifty.pipeline import Pipeline
from thrifty.pipeline.call import Attribution, Call, Result
from thrifty.pipeline.dispatch import Route

__all__ = ["handle_embeddings"]


_LARGE_INPUT = 256 * 1024
"""Inputs above this many bytes are counted on a worker thread, so the event loop goes on serving."""


def input_tokens(value: Any, counter: TokenCounter, model: str) -> int:
    """The tokens of an embeddings ``input``: a string, strings, a token array or token arrays."""
    if isinstance(value, str):
        return counter.text_tokens(value, model)
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return sum(counter.text_tokens(v, model) for v in value)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return len(value)
        if all(isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in v) for v in value):
            return sum(len(v) for v in value)
    raise Rejection(400, "input: expected a non-empty string, array of strings, token array or array of token arrays")


def _dimensions(value: object, path: str) -> object:
    return v.opt_int(value, path, 1)


def _encoding_format(value: object, path: str) -> object:
    if value not in ("float", "base64"):
        raise RequestError(path, f"expected 'float' or 'base64', got {value!r}"[:200])
    return value


# The optional fields of OpenAI's embeddings reference; others pass through unchecked.
_FIELD_CHECKS: dict[str, v.Check] = {"dimensions": _dimensions, "encoding_format": _encoding_format, "user": v.string}


def _generates_text(runtime: Runtime, route: Route) -> bool:
    """A model priced for output tokens is a chat model (OpenAI refuses one for embeddings too;
    served anyway, it would be priced at a chat model's input rate)."""
    try:
        rates = runtime.prices.quote(route.priced_as, provider=route.upstream.provider_id).rates
    except UnknownModelError:
        return False
    return bool(rates.output.at(0))


async def handle_embeddings(
    runtime: Runtime, body: dict[str, Any], request_id: str, started: float, who: Attribution, size: int = 0
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Rejection(400, "model: expected a non-empty string")
    if "input" not in body:
        raise Rejection(400, "input: is required")
    try:
        v.fields(body, _FIELD_CHECKS)
    except RequestError as error:
        raise Rejection(400, str(error)) from None
    route = runtime.routes.get(model)
    if route is None:
        raise Rejection(404, f"unknown model {model!r}", "not_found_error", "model_not_found")
    if route.upstream.wire != "openai":
        raise Rejection(400, f"{model} is served by an Anthropic-format provider, which has no embeddings endpoint")
    if _generates_text(runtime, route):
        raise Rejection(
            400, f"model: {model} is a chat model; /v1/embeddings takes an embedding model", code="model_not_embedding"
        )
    if size > _LARGE_INPUT:
        tokens = await asyncio.to_thread(input_tokens, body["input"], runtime.counter, route.priced_as)
    else:
        tokens = input_tokens(body["input"], runtime.counter, route.priced_as)
    call = Call(
        request_id=request_id,
        client_api="openai",
        body=body,
        request=ChatRequest(model=model, messages=(), max_tokens=0),  # no output to bound
        model=model,
        stream=False,
        attribution=who,
        ts=datetime.now(UTC),
        started=started,
        body_size=size,
        details={"endpoint": "embeddings", "upstream_model": route.upstream_model},
    )
    for each in runtime.routes.chain(model):  # what the budget estimate reads, for every route
        call.input_tokens[each.priced_as] = tokens

    async def forward(call: Call) -> Result:
        status, raw = await _forward(runtime, route, body)
        return Result(status=status, body=raw, billed=status == 200)

    limits = runtime.limits
    run = Pipeline(limits.steps(runtime.routes.chain), forward).run if limits is not None else forward
    result = await run(call)
    status, raw = result.status, result.body or b""
    usage = Usage()
    cost: Cost | None = Cost()  # a refused request is not billed: a known zero
    headers: list[tuple[bytes, bytes]] = [
        (b"x-thrifty-model", route.name.encode()),
        (b"x-thrifty-cache", b"miss"),
        *result.headers,  # a refusal's Retry-After
    ]
    if status == 200:
        try:
            reported = orjson.loads(raw).get("usage") or {}
            usage = Usage(input_tokens=int(reported.get("prompt_tokens") or reported.get("total_tokens") or 0))
        except (orjson.JSONDecodeError, AttributeError, UsageError, ValueError, TypeError):
            usage = Usage()
        ts = datetime.now(UTC)
        try:
            cost = runtime.prices.price(usage, route.priced_as, provider=route.upstream.provider_id, at=ts).cost
            headers.append((b"x-thrifty-cost-usd", format_usd(cost.total).encode()))
        except UnknownModelError:
            cost = None
    for listener in call.cost_listeners:  # budgets settle to the cost (or release a refusal's hold)
        listener(cost, usage)
    runtime.writer.submit(
        LedgerRecord(
            requested_model=model,
            served_model=route.name,
            ts=datetime.now(UTC),
            request_id=request_id,
            user=who.user,
            team=who.team,
            feature=who.feature,
            key_id=who.key_id,
            tags=who.tags,
            provider=route.upstream.name,
            usage=usage,
            cost=cost,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            status="ok" if status == 200 else "error",
            http_status=status,
            cache_status="miss",
            error=result.error,
            details=call.details,
        )
    )
    return status, raw, headers


async def _forward(runtime: Runtime, route: Route, body: dict[str, Any]) -> tuple[int, bytes]:
    """The provider's answer, retried as the retry policy says."""
    session = runtime.session
    assert session is not None
    payload = orjson.dumps({**body, "model": route.upstream_model})
    retry = runtime.config.retry
    timeout = aiohttp.ClientTimeout(total=retry.attempt_timeout_s, sock_connect=retry.connect_timeout_s)
    status, raw = 502, b""
    for attempt in range(retry.attempts):
        try:
            async with session.post(
                route.upstream.embeddings_url(route.upstream_model),
                data=payload,
                headers=route.upstream.headers(),
                timeout=timeout,
            ) as response:
                status, raw = response.status, await response.read()
                wait = provider_wait({k.lower(): v for k, v in response.headers.items()})
        except (aiohttp.ClientError, TimeoutError) as error:
            message = {"error": {"message": f"upstream unreachable: {error}", "type": "api_error"}}
            status, raw, wait = 502, orjson.dumps(message), None
        if status == 200 or not is_retryable(status) or attempt + 1 == retry.attempts:
            break
        await asyncio.sleep(
            wait
            if wait is not None
            else backoff_delay(attempt, retry.backoff_base_s, retry.backoff_max_s, random.random)
        )
    return status, raw
