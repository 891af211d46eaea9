"""Pricing every call and writing it to the ledger: whole responses at once, streams when they
end (normally, broken, or abandoned by the client)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from thrifty.core.ledger import LedgerRecord, new_record_id
from thrifty.core.pricing import Cost, PriceBook, UnknownModelError, format_usd
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage
from thrifty.pipeline.call import Call, Next, Result

if TYPE_CHECKING:
    from thrifty.pipeline.services import Sections, Services

__all__ = ["RecordStep"]

log = logging.getLogger("thrifty.record")

COST_HEADER = b"x-thrifty-cost-usd"


class RecordSink(Protocol):
    """Where ledger records go: the in-process writer thread, or the gateway's journal writer."""

    def submit(self, record: LedgerRecord) -> None: ...


class RecordStep:
    """The outermost step: whatever happens inside, the call is priced and recorded once."""

    def __init__(self, prices: PriceBook, writer: RecordSink, counter: TokenCounter) -> None:
        self.prices = prices
        self.writer = writer
        self.counter = counter

    @classmethod
    def from_config(cls, sections: Sections, services: Services) -> RecordStep:
        """Always on: no call goes unrecorded."""
        return cls(services.prices, services.writer, services.counter)

    async def __call__(self, call: Call, next_step: Next) -> Result:
        result = await next_step(call)
        self._record_extras(result)
        if result.events is not None:
            result.events = self._recorded_stream(call, result, result.events)
            return result
        usage, estimated = self._usage(call, result, result.output_text)
        cost = self._cost(call, result, usage)
        if cost is not None:
            result.headers.append((COST_HEADER, format_usd(cost.total).encode()))
        self._record(call, result, usage, cost, estimated, status=_status(result), error=result.error)
        return result

    def _record_extras(self, result: Result) -> None:
        """The rows steps made on the way (``Result.records``): a call a step made of its own (a
        routing classifier, a summary, an embedding), or an answer replaced by another (an
        escalated attempt; its stream was read to its end). Recorded now, before the answer
        goes out; each settles what was set aside for it."""
        extras, result.records = result.records, []
        for call, extra in extras:
            try:
                self._record_extras(extra)
                state = extra.stream_state
                text = "".join(state.output_text) if state else extra.output_text
                usage, estimated = self._usage(call, extra, text)
                cost = self._cost(call, extra, usage)
                self._record(call, extra, usage, cost, estimated, status=_status(extra), error=extra.error)
            except Exception:  # the answer matters more than this row: say so, answer anyway
                log.exception("ledger: could not record a row made for call %s", call.request_id)

    async def _recorded_stream(self, call: Call, result: Result, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        state = result.stream_state
        assert state is not None
        finished = False
        try:
            async for chunk in events:
                yield chunk
            finished = True
        finally:
            if not finished:
                state.client_disconnected = True
                await _close(events)
            usage, estimated = self._usage(call, result, "".join(state.output_text))
            cost = self._cost(call, result, usage)
            error: str | None
            if state.client_disconnected:
                status, error = "client_disconnected", "the client closed the stream"
            elif state.error is not None:
                status, error = "upstream_error", state.error
            else:
                status, error = "ok", None
            self._record(call, result, usage, cost, estimated, status=status, error=error)
        if cost is not None:
            # An SSE comment: SDKs skip it; a client that wants the figure can read it.
            yield b": x-thrifty-cost-usd " + format_usd(cost.total).encode() + b"\n\n"

    def _usage(self, call: Call, result: Result, output_text: str | None) -> tuple[Usage, bool]:
        """The provider's usage when it reported all of it; otherwise (a stream cut short, a server
        that reports no usage) the provider's input side where known, thrifty's count of the prompt
        where not, and thrifty's count of what was generated. The bool says it was estimated."""
        if not result.billed:
            return Usage(), False
        state = result.stream_state
        usage = state.usage if state is not None else result.usage
        # A stream's usage is whole once the model finished (OpenAI's usage chunk follows the
        # finish_reason chunk; Anthropic's message_delta carries both).
        if usage is not None and (state is None or state.finish_reason is not None):
            return usage, False
        sent = result.sent or call  # the request as sent (compressed, capped), not as asked
        model = result.priced_as or sent.model
        prompt = usage.input_tokens if usage is not None else sent.input_tokens.get(model)
        if prompt is None:
            prompt = self.counter.count_request(sent.request, model).input_tokens
        generated = self.counter.count_text(output_text, model).input_tokens if output_text else 0
        base = usage or Usage()
        return Usage(
            input_tokens=prompt,
            cache_read_tokens=base.cache_read_tokens,
            cache_write_5m_tokens=base.cache_write_5m_tokens,
            cache_write_1h_tokens=base.cache_write_1h_tokens,
            output_tokens=max(generated, base.output_tokens),
        ), True

    def _cost(self, call: Call, result: Result, usage: Usage) -> Cost | None:
        if not result.billed:
            return Cost()
        model = result.priced_as or call.model
        try:
            return self.prices.price(usage, model, provider=result.provider_id, at=call.ts).cost
        except UnknownModelError as error:
            call.details["price_error"] = str(error)
            return None

    def _counterfactual(self, call: Call, result: Result, usage: Usage, cost: Cost | None) -> Decimal | None:
        """What the call would have cost with no optimisation: a cache hit's stored answer priced
        now (set by the cache step), otherwise the actual cost plus every strategy's saving. The
        provider's prompt-cache saving is measured here: the same usage with no cache discount."""
        if call.counterfactual_cost is not None:
            return call.counterfactual_cost
        if cost is None:
            return None
        if result.billed and (usage.cache_read_tokens or usage.cache_write_tokens):
            plain = Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                reasoning_tokens=usage.reasoning_tokens,
            )
            try:
                uncached = self.prices.price(
                    plain, result.priced_as or call.model, provider=result.provider_id, at=call.ts
                ).cost.total
            except UnknownModelError:
                uncached = None
            if uncached is not None:
                call.savings["prompt_cache"] = uncached - cost.total
        return cost.total + sum(call.savings.values(), Decimal(0))

    def _record(
        self,
        call: Call,
        result: Result,
        usage: Usage,
        cost: Cost | None,
        estimated: bool,
        *,
        status: str,
        error: str | None,
    ) -> None:
        now = time.perf_counter()
        for listener in (*call.cost_listeners, *result.on_priced):  # budgets settle here, to the ledger's figures
            try:
                listener(cost, usage)
            except Exception:
                log.exception("a cost listener failed for call %s", call.request_id)
        first = result.stream_state.first_token_at if result.stream_state is not None else result.first_byte_at
        details: dict[str, Any] = dict(call.details)
        if estimated:
            details["usage_estimated"] = True
        if result.upstream_model:
            details["upstream_model"] = result.upstream_model
        if result.stream_state is not None and result.stream_state.finish_reason:
            details["finish_reason"] = result.stream_state.finish_reason
        attribution = call.attribution
        trace = call.trace
        record_id, trace.record_id = trace.record_id or new_record_id(), None  # an intent's id: superseded
        record = LedgerRecord(
            id=record_id,
            requested_model=call.request.model,  # as asked (an escalated attempt's row has a routed copy)
            ts=call.ts,
            request_id=call.request_id,
            user=attribution.user,
            team=attribution.team,
            feature=attribution.feature,
            key_id=attribution.key_id,
            tags=attribution.tags,
            provider=result.provider,
            served_model=result.served_model,
            usage=usage,
            cost=cost,
            counterfactual_cost=self._counterfactual(call, result, usage, cost),
            savings=call.savings,
            latency_ms=round((now - call.started) * 1000, 3),
            ttft_ms=None if first is None else round((first - call.started) * 1000, 3),
            status=status,
            error=error,
            http_status=result.status,
            cache_status=result.cache_status or call.cache_status,
            route=call.route,
            stream=call.stream,
            details=details,
        )
        try:
            self.writer.submit(record)
        except Exception:  # the journal is unwritable: say so loudly, but answer the client
            log.exception("ledger: could not record call %s", call.request_id)


def _status(result: Result) -> str:
    return "ok" if result.status == 200 else "error"


async def _close(events: AsyncIterator[bytes]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
