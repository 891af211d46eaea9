"""What the dispatcher records of its upstream attempts, beyond the call's own row.

* Write-ahead: before a call's first attempt goes upstream, its intent is journalled -- the row
  the call gets should the process die before its final row is written (status ``interrupted``).
  It carries the id the final row will carry, so the final row supersedes it (see
  ``stores.ledger.intents``).
* An attempt the provider may have billed without answering (it timed out waiting for the
  answer, or the answer was cut short) gets a row of its own (status ``timeout`` or
  ``incomplete``), whatever the call's outcome: the provider bills what it generated.

Both are priced at what is known of such a call: its input tokens at the model's input price, a
lower bound (details ``cost_lower_bound: true``): what it generated is not known, nor whether the
provider's prompt cache made the input cheaper.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from thrifty.core.ledger import INTERRUPTED, LedgerRecord, new_record_id
from thrifty.core.pricing import Cost, PriceBook, UnknownModelError
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage
from thrifty.pipeline.call import Call
from thrifty.pipeline.steps.record import RecordSink

if TYPE_CHECKING:
    from thrifty.pipeline.steps.dispatch import Route

__all__ = ["AttemptLedger", "IntentSink"]

_INTERRUPTED_ERROR = "no outcome was recorded: the process stopped while the call was in flight"

log = logging.getLogger("thrifty.dispatch")


@runtime_checkable
class IntentSink(Protocol):
    """A ledger writer that journals intents (both of thrifty's writers do)."""

    def intend(self, record: LedgerRecord) -> None: ...


class AttemptLedger:
    def __init__(self, prices: PriceBook, writer: RecordSink, counter: TokenCounter) -> None:
        self.prices = prices
        self.writer = writer
        self.counter = counter
        self._intend = writer if isinstance(writer, IntentSink) else None

    def intend(self, call: Call, route: Route) -> None:
        """Before the call's first upstream attempt: its id, and its intent journalled."""
        call.trace.record_id = record_id = new_record_id()
        if self._intend is None:
            return
        usage, cost, details = self._lower_bound(call, route)
        record = self._record(call, route, usage, cost, details, INTERRUPTED, _INTERRUPTED_ERROR, record_id)
        try:
            self._intend.intend(record)
        except Exception:  # the journal is unwritable: the call goes on, as its final row would
            log.exception("ledger: could not journal the intent of call %s", call.request_id)

    def lost(self, call: Call, route: Route, status: str, error: str, note: dict[str, Any]) -> None:
        """An attempt the provider may have billed ended without an answer: its own row."""
        usage, cost, details = self._lower_bound(call, route)
        details["attempt"] = dict(note)
        record = self._record(call, route, usage, cost, details, status, error, new_record_id())
        try:
            self.writer.submit(record)
        except Exception:
            log.exception("ledger: could not record a lost attempt of call %s", call.request_id)

    def _lower_bound(self, call: Call, route: Route) -> tuple[Usage, Cost | None, dict[str, Any]]:
        model = route.priced_as
        tokens = call.input_tokens.get(model)
        if tokens is None:
            tokens = call.input_tokens[model] = self.counter.count_request(call.request, model).input_tokens
        usage = Usage(input_tokens=tokens)
        details: dict[str, Any] = {"cost_lower_bound": True, "upstream_model": route.upstream_model}
        try:
            cost: Cost | None = self.prices.price(usage, model, provider=route.upstream.provider_id, at=call.ts).cost
        except UnknownModelError as error:
            cost, details["price_error"] = None, str(error)
        return usage, cost, details

    @staticmethod
    def _record(
        call: Call,
        route: Route,
        usage: Usage,
        cost: Cost | None,
        details: dict[str, Any],
        status: str,
        error: str,
        record_id: str,
    ) -> LedgerRecord:
        attribution = call.attribution
        purpose = call.details.get("purpose")
        if purpose is not None:
            details["purpose"] = purpose
        return LedgerRecord(
            id=record_id,
            requested_model=call.request.model,
            ts=call.ts,
            request_id=call.request_id,
            user=attribution.user,
            team=attribution.team,
            feature=attribution.feature,
            key_id=attribution.key_id,
            tags=attribution.tags,
            provider=route.upstream.name,
            served_model=route.name,
            usage=usage,
            cost=cost,
            status=status,
            error=error,
            cache_status=call.cache_status,
            route=call.route,
            stream=call.stream,
            details=details,
        )
