"""``POST /v1/embeddings``: forwarded to an OpenAI-format provider, priced and recorded."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing import Cost, UnknownModelError, format_usd
from thrifty.core.retry import backoff_delay, is_retryable, provider_wait
from thrifty.core.usage import Usage, UsageError
from thrifty.gateway.intake import Rejection
from thrifty.gateway.runtime import Runtime
from thrifty.pipeline.call import Attribution

__all__ = ["handle_embeddings"]


async def handle_embeddings(
    runtime: Runtime, body: dict[str, Any], request_id: str, started: float, who: Attribution
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Rejection(400, "model: expected a non-empty string")
    if "input" not in body:
        raise Rejection(400, "input: is required")
    route = runtime.routes.get(model)
    if route is None:
        raise Rejection(404, f"unknown model {model!r}", "not_found_error", "model_not_found")
    if route.upstream.wire != "openai":
        raise Rejection(400, f"{model} is served by an Anthropic-format provider, which has no embeddings endpoint")
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
    usage = Usage()
    cost: Cost | None = Cost()  # a refused request is not billed: a known zero
    headers: list[tuple[bytes, bytes]] = [(b"x-thrifty-model", route.name.encode()), (b"x-thrifty-cache", b"miss")]
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
            details={"endpoint": "embeddings", "upstream_model": route.upstream_model},
        )
    )
    return status, raw, headers
