"""Budgets for a batch: each line's most at batch rates is added up per budget counter when the
batch is created and reserved in one atomic step, so a batch the budgets cannot hold is refused
whole; as results arrive, what each counter's lines did cost settles it (the rest is released),
and a cancelled or expired batch releases what its missing lines held."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from thrifty.core.budgets import max_call_cost, max_output_tokens, units_to_usd, usd_to_units
from thrifty.core.pricing import PriceBook, UnknownModelError, format_usd
from thrifty.core.tokens.counter import TokenCounter
from thrifty.errors import Rejection, StoreUnavailable
from thrifty.pipeline.budgets.engine import BudgetEngine, line_for
from thrifty.pipeline.budgets.estimate import count_input
from thrifty.pipeline.call import Call, Result
from thrifty.pipeline.steps.dispatch import Route
from thrifty.stores.budgets import Line

__all__ = ["BatchBudget", "LineSpend"]

log = logging.getLogger("thrifty.batch")


@dataclass(slots=True)
class _Counter:
    line: Line
    unit: str
    describe: str
    models: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class LineSpend:
    """What one line of a batch cost, for settling: its model, USD (None: unknown) and tokens."""

    model: str
    usd: Decimal | None
    tokens: int


class BatchBudget:
    """The budgets of one batch being created: ``add`` each line (a plan may refuse it or cap
    its max_tokens), then ``reserve`` them all."""

    def __init__(self, engine: BudgetEngine, prices: PriceBook, counter: TokenCounter) -> None:
        self.engine = engine
        self.prices = prices
        self.counter = counter
        self.now = datetime.now(UTC)
        self._counters: dict[str, _Counter] = {}
        self.max_usd = Decimal(0)

    def add(self, call: Call, route: Route) -> Call:
        """The call to send (a plan's copy with its max_tokens cap); raises ``ValueError`` when a
        plan refuses the model or its price is unknown to a dollar budget."""
        engine = self.engine
        plan = engine.plan_for(call)
        if plan is not None:
            applied = engine.apply_plan(call, *plan)
            if isinstance(applied, Result):
                raise ValueError(applied.error or "refused by the plan")
            call = applied
        pairs = engine.covering(call, plan[0] if plan is not None else None)
        if not pairs:
            return call
        tokens = count_input(call, self.counter, route.priced_as)
        out = call.request.choices * max_output_tokens(
            call.request.max_tokens, route.max_output_tokens, route.context_window, tokens, engine.default_max_output
        )
        try:
            rates = self.prices.quote(
                route.priced_as, provider=route.upstream.provider_id, at=call.ts, batch=True
            ).rates
            usd: Decimal | None = max_call_cost(rates, tokens, out)
        except UnknownModelError:
            usd = None
        if usd is not None:
            self.max_usd += usd
        for budget, subject in pairs:
            if budget.unit == "usd" and usd is None:
                raise ValueError(f"no price is known for {call.model}, so a dollar budget cannot bound its cost")
            amount = tokens + out if budget.unit == "tokens" else usd_to_units(usd or Decimal(0))
            line = line_for(budget, subject, engine.period(budget.window, self.now), 0, self.now)
            counter = self._counters.get(line.key)
            if counter is None:
                describe = f"{budget.describe_limit()} for {budget.who(subject)}"
                counter = self._counters[line.key] = _Counter(line, budget.unit, describe)
            counter.line = replace(counter.line, amount=counter.line.amount + amount)
            counter.models.add(call.model)
        return call

    async def reserve(self, batch_id: str, lines: int) -> tuple[str | None, list[dict[str, Any]]]:
        """The reservation's id and what it holds (None: no budget covers the batch); raises
        ``Rejection`` (429) when a budget cannot hold the whole batch."""
        if not self._counters:
            return None, []
        counters = list(self._counters.values())
        reservation = f"{batch_id}.{secrets.token_hex(4)}"
        try:
            refusal = await self.engine.store.reserve(reservation, [c.line for c in counters])
        except StoreUnavailable as error:
            if self.engine.fail_open:
                log.error("budgets: %s; batch %s let through uncounted (budgets.fail_open: true)", error, batch_id)
                return None, []
            raise Rejection(503, f"budgets cannot be checked ({error}); the batch was not queued") from None
        if refusal is not None:
            counter = counters[refusal.index]
            need, spent, held = (
                _amount(counter.unit, x) for x in (counter.line.amount, refusal.spent, refusal.reserved)
            )
            message = (
                f"the batch of {lines:,} lines needs up to {need} at batch rates on the budget of {counter.describe}, "
                f"which has {spent} spent and {held} reserved: refused whole, nothing was queued or billed"
            )
            raise Rejection(429, message, kind="budget_exceeded", code="budget_exceeded")
        held_doc = [
            {
                "key": c.line.key,
                "limit": c.line.limit,
                "amount": c.line.amount,
                "rolling_ms": c.line.rolling_ms,
                "bucket_ms": c.line.bucket_ms,
                "ttl_s": c.line.ttl_s,
                "unit": c.unit,
                "models": sorted(c.models),
            }
            for c in counters
        ]
        return reservation, held_doc


async def settle(engine: BudgetEngine, reservation: str, held: list[dict[str, Any]], spent: list[LineSpend]) -> None:
    """Settle the batch's reservation to what its lines cost (an unknown cost counts as the most
    the counter held for it: unknown is not free); lines that never ran cost nothing."""
    lines = []
    for doc in held:
        models = set(doc["models"])
        amount = 0
        for line in spent:
            if line.model not in models:
                continue
            if doc["unit"] == "tokens":
                amount += line.tokens
            elif line.usd is None:
                amount = doc["amount"]
                break
            else:
                amount += usd_to_units(line.usd)
        lines.append(
            Line(
                key=doc["key"],
                amount=amount,
                limit=doc["limit"],
                rolling_ms=doc["rolling_ms"],
                bucket_ms=doc["bucket_ms"],
                ttl_s=doc["ttl_s"],
                held=doc["amount"],
            )
        )
    await engine.store.settle(reservation, lines)


def _amount(unit: str, units: int) -> str:
    return f"${format_usd(units_to_usd(units))}" if unit == "usd" else f"{units:,} tokens"
