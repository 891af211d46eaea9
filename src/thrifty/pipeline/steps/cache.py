"""The exact response cache step: the same request (model, messages, tools, every parameter that
changes the answer; not who asked nor whether it streams) from the same tenant gets the stored
answer, at no cost, whole or replayed as a stream in the client's format."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.config.cache import ExactCacheSpec
from thrifty.core.cache_key import exact_key, is_sampled, namespace_for
from thrifty.core.pricing import PriceBook, UnknownModelError
from thrifty.core.usage import Usage, UsageError
from thrifty.pipeline.call import Call, Next, Result, StreamState
from thrifty.providers.sse import encode_event
from thrifty.stores.cache import ResponseCache
from thrifty.wire.formats import StreamAccumulator, wire_format

if TYPE_CHECKING:
    from thrifty.pipeline.services import Sections, Services

__all__ = [
    "BYPASS_CAUSES",
    "ExactCacheStep",
    "bypass_reason",
    "cache_hit_result",
    "encode_entry",
    "load_entry",
    "note_bypass",
    "price_stored",
    "settled",
    "stored_stream",
    "ttl_for",
]

log = logging.getLogger("thrifty.cache")


def bypass_reason(call: Call, spec: ExactCacheSpec) -> str | None:
    """Why both response caches leave this call alone, if they do: ``off`` (``x-thrifty-cache:
    off``) or ``sampled`` (temperature > 0 or unset would answer differently each time, unless the
    config caches sampled requests or the call sends ``x-thrifty-cache: force``)."""
    directive = call.cache_directive
    if directive == "off":
        return "off"
    if spec.sampled == "bypass" and directive != "force" and is_sampled(call.body):
        return "sampled"
    return None


BYPASS_CAUSES = {
    "temperature_unset": "temperature unset (the SDKs' default, which the providers sample at 1)",
    "temperature_above_0": "temperature above 0",
    "off": "x-thrifty-cache: off",
}
"""Why a call bypassed the response caches, as its ledger row's ``details.cache_bypass`` says."""


def note_bypass(call: Call, reason: str) -> None:
    """Write why the caches left this call alone into its row, once (``thrifty report`` counts them)."""
    if "cache_bypass" in call.details:
        return
    if reason == "sampled":
        unset = call.body.get("temperature") is None
        call.details["cache_bypass"] = "temperature_unset" if unset else "temperature_above_0"
    else:
        call.details["cache_bypass"] = reason


class ExactCacheStep:
    def __init__(self, cache: ResponseCache, spec: ExactCacheSpec, prices: PriceBook) -> None:
        self.cache = cache
        self.spec = spec
        self.prices = prices

    @classmethod
    def from_config(cls, sections: Sections, services: Services) -> ExactCacheStep | None:
        """``cache.exact``; off without it or without a store to keep answers in."""
        spec = sections.cache.exact
        if not spec.enabled or services.response_cache is None:
            return None
        return cls(services.response_cache, spec, services.prices)

    async def __call__(self, call: Call, next_step: Next) -> Result:
        spec = self.spec
        reason = bypass_reason(call, spec) if spec.enabled else "off"
        if reason is not None:
            call = call.replace(cache_status="bypass")
            note_bypass(call, reason)
            return settled(await next_step(call), "bypass")
        who = call.attribution
        namespace = namespace_for(spec.scope, team=who.team, key_id=who.key_id, user=who.user)
        key = exact_key(call.body, call.client_api, call.model, call.cache_version)
        call.details["cache_key"] = key  # the entry this answer is (or comes from): feedback evicts it
        stored = await self.cache.get(namespace, key)
        if stored is not None:
            entry = load_entry(stored)
            if entry is not None and entry.get("api") == call.client_api:
                return cache_hit_result(call, entry, "hit", "exact_cache", self.prices)
        call = call.replace(cache_status="miss")
        result = settled(await next_step(call), "miss")
        if result.status != 200 or result.cache_status != "miss":
            return result  # failed, or answered (or left alone) by an inner cache: not stored as exact
        ttl = ttl_for(spec, namespace)
        if result.events is None:
            if result.body is not None and len(result.body) <= spec.max_entry_bytes:
                await self._store(namespace, key, call, result, result.body, result.usage, ttl)
            return result
        result.events = self._store_stream(namespace, key, call, result, result.events, ttl)
        return result

    async def _store(
        self,
        namespace: str,
        key: str,
        call: Call,
        result: Result,
        body: bytes,
        usage: Usage | None,
        ttl: int,
    ) -> None:
        value = encode_entry(call, result, body, usage, self.prices)
        if len(value) <= self.spec.max_entry_bytes:
            await self.cache.put(namespace, key, value, ttl)

    def _store_stream(
        self, namespace: str, key: str, call: Call, result: Result, events: AsyncIterator[bytes], ttl: int
    ) -> AsyncIterator[bytes]:
        async def complete(body: bytes, usage: Usage | None) -> None:
            await self._store(namespace, key, call, result, body, usage, ttl)

        return stored_stream(call, result, events, self.spec.max_entry_bytes, complete)


def encode_entry(
    call: Call, result: Result, body: bytes, usage: Usage | None, prices: PriceBook, **extra: Any
) -> bytes:
    """An entry is a small JSON header, a newline, and the response body as the client got it
    (so a hit sends it without decoding or encoding it). ``extra`` goes into the header (the
    semantic cache keeps the question there). No request header, so no API key, is ever in it."""
    cost = None
    if usage is not None and result.priced_as is not None:
        try:
            cost = prices.price(usage, result.priced_as, provider=result.provider_id, at=call.ts).cost.total
        except UnknownModelError:
            cost = None
    header = {
        "api": call.client_api,
        "model": result.served_model,
        "priced_as": result.priced_as,
        "provider": result.provider,
        "provider_id": result.provider_id,
        "usage": usage.as_dict() if usage is not None else None,
        "cost": None if cost is None else str(cost),
        "request_id": call.request_id,
        "stored_at": time.time(),
        **extra,
    }
    return orjson.dumps(header) + b"\n" + body


async def stored_stream(
    call: Call,
    result: Result,
    events: AsyncIterator[bytes],
    max_bytes: int,
    complete: Callable[[bytes, Usage | None], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """``events`` passed through unchanged; once a stream ends whole (and no larger than
    ``max_bytes``), ``complete`` gets the answer as one response body and the stream's usage."""
    accumulator = wire_format(call.client_api).accumulator()
    size = 0
    try:
        async for chunk in events:
            size += len(chunk)
            if size <= max_bytes:
                _feed(accumulator, chunk)
            yield chunk
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
    state = result.stream_state
    whole = state is not None and state.finish_reason is not None and state.error is None
    if whole and state is not None and size <= max_bytes:
        await complete(orjson.dumps(accumulator.result()), state.usage)


def _feed(accumulator: StreamAccumulator, chunk: bytes) -> None:
    for raw in chunk.split(b"\n\n"):
        if not raw.strip():
            continue
        event = None
        data = b""
        for line in raw.split(b"\n"):
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        if not data or data == b"[DONE]":
            continue
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        accumulator.feed_event(event, parsed)


def load_entry(raw: bytes) -> dict[str, Any] | None:
    """The entry's header, with the body's raw bytes under ``body_raw``."""
    head, newline, body = raw.partition(b"\n")
    if not newline:
        return None
    try:
        entry = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict):
        return None
    entry["body_raw"] = body
    return entry


def ttl_for(spec: ExactCacheSpec, namespace: str) -> int:
    """How long an entry of ``namespace`` is kept: its own TTL, else the cache's."""
    override = spec.namespaces.get(namespace)
    return override.ttl_s if override is not None and override.ttl_s is not None else spec.ttl_s


def price_stored(entry: dict[str, Any], call: Call, prices: PriceBook) -> Decimal | None:
    """What the stored answer cost when it was made: the saving of a hit (repriced from its usage
    when the entry does not carry it)."""
    if isinstance(entry.get("cost"), str):
        return Decimal(entry["cost"])
    raw = entry.get("usage")
    model = entry.get("priced_as")
    if not isinstance(raw, dict) or not isinstance(model, str):
        return None
    try:
        usage = Usage(
            input_tokens=int(raw.get("input_tokens", 0)),
            output_tokens=int(raw.get("output_tokens", 0)),
            cache_read_tokens=int(raw.get("cache_read_tokens", 0)),
            cache_write_5m_tokens=int(raw.get("cache_write_5m_tokens", 0)),
            cache_write_1h_tokens=int(raw.get("cache_write_1h_tokens", 0)),
            reasoning_tokens=int(raw.get("reasoning_tokens", 0)),
        )
        return prices.price(usage, model, provider=entry.get("provider_id"), at=call.ts).cost.total
    except (UsageError, UnknownModelError, ValueError, TypeError):
        return None


def settled(result: Result, status: str) -> Result:
    """``result`` with this step's cache status, unless an inner cache step already said how."""
    if result.cache_status is None:
        result.cache_status = status
    return result


def cache_hit_result(call: Call, entry: dict[str, Any], status: str, strategy: str, prices: PriceBook) -> Result:
    """The stored answer as this call's result: nothing billed, the saving recorded."""
    saved = price_stored(entry, call, prices)
    if saved is not None:
        call.trace.counterfactual_cost = saved
        call.savings[strategy] = saved
    call.details["cached_from"] = entry.get("request_id")
    if entry.get("usage"):
        call.details["cached_usage"] = entry["usage"]
    common: dict[str, Any] = {
        "status": 200,
        "served_model": entry.get("model"),
        "provider": entry.get("provider"),
        "provider_id": entry.get("provider_id"),
        "priced_as": entry.get("priced_as"),
        "billed": False,
        "first_byte_at": time.perf_counter(),
        "cache_status": status,
    }
    raw: bytes = entry["body_raw"]
    if not call.stream:
        return Result(body=raw, **common)
    state = StreamState(finish_reason="cached", first_token_at=time.perf_counter())
    return Result(events=_replay(call, orjson.loads(raw)), stream_state=state, **common)


async def _replay(call: Call, body: Any) -> AsyncIterator[bytes]:
    wire = wire_format(call.client_api)
    events = wire.replay(body, call.include_usage)
    yield b"".join(encode_event(data, name) for name, data in events) + wire.stream_end
