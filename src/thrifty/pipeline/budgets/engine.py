"""Budgets and plans in the pipeline: before a call is dispatched, reserve the most it can cost on
every budget that covers it (one atomic step in the store); once its cost is known (a stream:
when it ends), settle the reservation to the actual cost; on failure, release it.

Plans come first: the plan of the call's user (or team) may refuse the model, caps max_tokens,
and adds the plan's own per-user budgets. At a budget's hard limit the call is refused (429,
``budget_exceeded``, Retry-After at the window's reset) or sent to a cheaper model instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from thrifty.config.budgets import PlanSpec, PlansSpec
from thrifty.core.budgets import (
    Budget,
    BudgetError,
    Period,
    Window,
    applicable,
    budget_from_doc,
    budget_to_doc,
    units_to_usd,
    usd_to_units,
)
from thrifty.core.pricing import Cost, PriceBook, format_usd
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage
from thrifty.errors import error_body
from thrifty.pipeline.alerts import AlertSender
from thrifty.pipeline.budgets.estimate import Estimate, RoutesOf, estimate, subject_of
from thrifty.pipeline.budgets.refusal import refused, refused_message
from thrifty.pipeline.call import Call, Result
from thrifty.stores.budgets import BudgetStore, Line, Refusal, StoreUnavailable, line_key
from thrifty.stores.budgets.base import SEP

__all__ = ["BudgetEngine", "RoutesOf", "estimate"]

log = logging.getLogger("thrifty.budgets")

_DAY = 86_400


@dataclass(slots=True)
class _Held:
    """A reservation: the budgets it holds and what it reserved on each."""

    id: str
    pairs: list[tuple[Budget, str, Period]]
    lines: list[Line]
    engine: BudgetEngine
    done: bool = False
    call: Call | None = None
    """The call to send when a budget downgraded it to another model (a copy: the request as
    asked is unchanged)."""

    def on_cost(self, cost: Cost | None, usage: Usage) -> None:
        if self.done:
            return
        self.done = True
        actual = []
        for (budget, _, _), line in zip(self.pairs, self.lines, strict=True):
            if budget.unit == "tokens":
                amount = usage.input_tokens + usage.output_tokens
            elif cost is None:
                amount = line.amount  # unknown is not free: the reservation stands as the spend
            else:
                amount = usd_to_units(cost.total)
            actual.append(replace(line, amount=amount, held=line.amount))
        self.engine.settle_soon(self, actual)

    def release(self) -> None:
        if not self.done:
            self.done = True
            self.engine.release_soon(self)


class BudgetEngine:
    """The budgets of one runtime: their definitions (re-read from the store every few seconds, so
    every process sees the CLI's and the admin API's changes), plans, and the store's reservations."""

    def __init__(
        self,
        store: BudgetStore,
        *,
        prices: PriceBook,
        counter: TokenCounter,
        alerts: AlertSender | None = None,
        plans: PlansSpec | None = None,
        initial: Sequence[Budget] = (),
        timezone: str = "UTC",
        fail_open: bool = False,
        unpriced: str = "refuse",
        default_max_output: int = 16_384,
        refresh_s: float = 2.0,
        lease_s: float = 15.0,
    ) -> None:
        self.store = store
        self.prices = prices
        self.counter = counter
        self.alerts = alerts
        self.plans = plans
        self.initial = list(initial)
        self.timezone = timezone
        self.fail_open = fail_open
        self.unpriced = unpriced
        self.default_max_output = default_max_output
        self.refresh_s = refresh_s
        self.lease_s = lease_s
        self.budgets: list[Budget] = list(initial)
        self.loaded = False
        self._plan_budgets: dict[str, list[Budget]] = {}
        if plans is not None:
            for name, plan in plans.tiers.items():
                self._plan_budgets[name] = [
                    spec.to_budget("user", None, timezone, f"plan:{name}") for spec in plan.budgets
                ]
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: list[tuple[str, list[Line]]] = []
        self._alerted: set[str] = set()
        self._background: asyncio.Task[None] | None = None
        self._periods: dict[Window, Period] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            for budget in self.initial:
                await self.store.put_definition(budget.id, budget_to_doc(budget), only_new=True)
            await self.store.heartbeat()
            await self.refresh()
        except StoreUnavailable as error:
            log.error("budgets: the store is unreachable at start (%s); retrying in the background", error)
        self._background = asyncio.ensure_future(self._maintain())

    async def stop(self) -> None:
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
        await self.drain()
        try:
            await self._retry_pending()
            await self.store.release_all()
        except StoreUnavailable as error:
            log.error("budgets: could not settle or release at shutdown: %s", error)
        if self._pending:
            log.error("budgets: %d settlements could not be written before shutdown", len(self._pending))
        if self.alerts is not None:
            await self.alerts.close()
        await self.store.close()

    async def drain(self) -> None:
        """Wait for the settlements and releases under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def refresh(self) -> None:
        docs = await self.store.definitions()
        found = []
        for doc in docs:
            try:
                found.append(budget_from_doc(doc))
            except BudgetError as error:
                log.error("budgets: ignoring the stored budget %s: %s", doc.get("id"), error)
        self.budgets = found
        self.loaded = True

    async def _maintain(self) -> None:
        beat = max(0.2, min(self.refresh_s, self.lease_s / 3))
        since_refresh = 0.0
        while True:
            await asyncio.sleep(beat)
            since_refresh += beat
            try:
                await self.store.heartbeat()
                await self._retry_pending()
                if since_refresh >= self.refresh_s:
                    since_refresh = 0.0
                    await self.refresh()
            except StoreUnavailable as error:
                log.error("budgets: store unreachable: %s", error)
            except Exception:
                log.exception("budgets: background upkeep failed")

    # -- which budgets apply ---------------------------------------------------------------------

    def plan_for(self, call: Call) -> tuple[str, PlanSpec] | None:
        if self.plans is None:
            return None
        name = self.plans.plan_of(call.attribution.user, call.attribution.team)
        return (name, self.plans.tiers[name]) if name is not None else None

    def covering(self, call: Call, plan: str | None) -> list[tuple[Budget, str]]:
        if not self.budgets and plan is None:
            return []  # nothing can apply (read per call: budgets added at runtime count at once)
        subject = subject_of(call)
        pairs = applicable(self.budgets, subject)
        if plan is not None and subject.user is not None:
            pairs += applicable(self._plan_budgets.get(plan, ()), subject)
        return pairs

    def plan_budgets(self) -> list[Budget]:
        return [b for budgets in self._plan_budgets.values() for b in budgets]

    # -- reserve, settle, release ------------------------------------------------------------------

    def period(self, window: Window, now: datetime) -> Period:
        """The window's period at ``now``; computed once per period (time zones are not free)."""
        known = self._periods.get(window)
        if known is not None and (known.start is None or known.start <= now < known.reset):  # type: ignore[operator]
            return known
        period = self._periods[window] = window.period(now)
        return period

    def _lines(
        self, pairs: Sequence[tuple[Budget, str]], periods: Sequence[Period], guess: Estimate, now: datetime
    ) -> list[Line]:
        lines = []
        for (budget, subject), period in zip(pairs, periods, strict=True):
            if budget.unit == "tokens":
                amount = guess.max_tokens
            else:
                amount = usd_to_units(guess.max_usd) if guess.max_usd is not None else 0
            lines.append(line_for(budget, subject, period, amount, now))
        return lines

    async def _hold(
        self,
        call: Call,
        pairs: Sequence[tuple[Budget, str]],
        periods: Sequence[Period],
        guess: Estimate,
        now: datetime,
    ) -> tuple[_Held, Refusal | None]:
        """Reserve ``guess`` on every budget in one store operation: the reservation, and the
        store's refusal if a budget cannot take it (raises ``StoreUnavailable``)."""
        lines = self._lines(pairs, periods, guess, now)
        held = _Held(
            f"{call.request_id}.{secrets.token_hex(4)}",
            [(b, s, p) for (b, s), p in zip(pairs, periods, strict=True)],
            lines,
            self,
        )
        return held, await self.store.reserve(held.id, lines)

    async def reserve(self, call: Call, pairs: list[tuple[Budget, str]], routes_of: RoutesOf) -> _Held | Result | None:
        """A reservation, a refusal, or None (the store is down and budgets fail open)."""
        now = datetime.now(UTC)
        periods = [self.period(b.window, now) for b, _ in pairs]
        guess = estimate(call, routes_of(call.model), self.counter, self.prices, self.default_max_output)
        if guess.max_usd is None and self.unpriced == "refuse" and any(b.unit == "usd" for b, _ in pairs):
            budget, subject = next((b, s) for b, s in pairs if b.unit == "usd")
            message = (
                f"no price is known for {call.model}, so its cost cannot be bounded by the budget of "
                f"{budget.describe_limit()} for {budget.who(subject)} (budgets.unpriced: refuse)"
            )
            return refused(call, message, None)
        try:
            held, refusal = await self._hold(call, pairs, periods, guess, now)
        except StoreUnavailable as error:
            return self._unavailable(call, error)
        if refusal is None:
            return held
        budget, subject, period = held.pairs[refusal.index]
        line = held.lines[refusal.index]
        if budget.on_exceed == "downgrade" and budget.downgrade_to and budget.downgrade_to != call.model:
            downgraded = await self._downgrade(call, pairs, periods, budget, routes_of, now)
            if downgraded is not None:
                return downgraded
        never = line.amount > budget.limit
        if not never:
            self._alert_exceeded(budget, subject, period, line, refusal.spent, now)
        return refused(
            call,
            *refused_message(
                call, budget, subject, period, line, refusal.spent, refusal.reserved, never, refusal.retry_after_s, now
            ),
        )

    async def _downgrade(
        self,
        call: Call,
        pairs: list[tuple[Budget, str]],
        periods: list[Period],
        budget: Budget,
        routes_of: RoutesOf,
        now: datetime,
    ) -> _Held | Result | None:
        target = budget.downgrade_to
        assert target is not None
        routes = routes_of(target)
        if not routes:
            log.error("budgets: %s downgrades to %s, which this gateway does not serve", budget.id, target)
            return None
        downgraded = call.replace(model=target)
        guess = estimate(downgraded, routes, self.counter, self.prices, self.default_max_output)
        if guess.max_usd is None and self.unpriced == "refuse" and any(b.unit == "usd" for b, _ in pairs):
            return None
        try:
            held, refusal = await self._hold(downgraded, pairs, periods, guess, now)
        except StoreUnavailable as error:
            return self._unavailable(call, error)
        if refusal is not None:
            return None
        call.details["budget_downgrade"] = {"from": call.model, "to": target, "budget": budget.id}
        held.call = downgraded
        return held

    def _unavailable(self, call: Call, error: StoreUnavailable) -> Result | None:
        if self.fail_open:
            log.error("budgets: %s; call %s let through uncounted (budgets.fail_open: true)", error, call.request_id)
            call.details["budget"] = "store unreachable: let through uncounted (fail_open)"
            return None
        message = (
            f"budgets cannot be checked ({error}); calls a budget covers are refused until the store is back "
            "(budgets.fail_open: false)"
        )
        log.error("budgets: %s; call %s refused", error, call.request_id)
        body = error_body(call.client_api, 503, message, "api_error", "budget_store_unavailable")
        return Result(status=503, body=body, error=message, billed=False)

    def settle_soon(self, held: _Held, actual: list[Line]) -> None:
        self._spawn(self._settle(held, actual))

    def release_soon(self, held: _Held) -> None:
        self._spawn(self._release(held.id))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, held: _Held, actual: list[Line]) -> None:
        try:
            after = await self.store.settle(held.id, actual)
        except StoreUnavailable as error:
            log.error("budgets: settling %s failed (%s); it is retried until the store answers", held.id, error)
            self._pending.append((held.id, actual))
            return
        self._check_alerts(held, after)

    async def _release(self, reservation: str) -> None:
        try:
            await self.store.release(reservation)
        except StoreUnavailable as error:
            log.error("budgets: releasing %s failed (%s); it lapses with this process's lease", reservation, error)

    async def _retry_pending(self) -> None:
        while self._pending:
            reservation, lines = self._pending[0]
            await self.store.settle(reservation, lines)
            self._pending.pop(0)

    # -- alerts ----------------------------------------------------------------------------------

    def _check_alerts(self, held: _Held, after: list[int]) -> None:
        if self.alerts is None:
            return
        now = datetime.now(UTC)
        for (budget, subject, period), line, spent in zip(held.pairs, held.lines, after, strict=True):
            if budget.limit <= 0:
                continue
            for threshold in budget.alert_at:
                if Decimal(spent) >= threshold * budget.limit:
                    self._claim_and_send(budget, subject, period, line, spent, now, threshold, "budget.threshold")

    def _alert_exceeded(
        self, budget: Budget, subject: str, period: Period, line: Line, spent: int, now: datetime
    ) -> None:
        if self.alerts is not None:
            self._claim_and_send(budget, subject, period, line, spent, now, Decimal(1), "budget.exceeded")

    def _claim_and_send(
        self,
        budget: Budget,
        subject: str,
        period: Period,
        line: Line,
        spent: int,
        now: datetime,
        threshold: Decimal,
        kind: str,
    ) -> None:
        key = f"{line.key}{SEP}{kind}{SEP}{threshold}"
        if key in self._alerted:
            return
        self._alerted.add(key)
        if len(self._alerted) > 100_000:
            self._alerted.clear()
        ttl = line.ttl_s if budget.window.kind != "rolling" else budget.window.seconds
        event = {
            "id": f"alert_{secrets.token_hex(8)}",
            "type": kind,
            "budget_id": budget.id,
            "scope": budget.scope,
            "subject": subject,
            "window": budget.window.describe(),
            "period": period.key,
            "period_start": period.start.isoformat() if period.start else None,
            "resets_at": period.reset.isoformat() if period.reset else None,
            "unit": budget.unit,
            "limit": amount_json(budget.unit, budget.limit),
            "spent": amount_json(budget.unit, spent),
            "threshold": format_usd(threshold),
            "ts": now.isoformat(timespec="microseconds"),
        }
        self._spawn(self._claim(key, ttl, event))

    async def _claim(self, key: str, ttl: int, event: dict[str, Any]) -> None:
        assert self.alerts is not None
        try:
            if await self.store.claim_alert(key, ttl):
                self.alerts.send(event)
        except StoreUnavailable as error:
            self._alerted.discard(key)  # try again on a later settlement
            log.error("budgets: could not claim alert %s: %s", key, error)

    # -- plans ---------------------------------------------------------------------------------

    def apply_plan(self, call: Call, name: str, plan: PlanSpec) -> Result | Call:
        """A refusal, or the call to go on with (a copy with the plan's max_tokens cap)."""
        call.details["plan"] = name
        if plan.models is not None and call.model not in plan.models:
            message = f"the {name} plan does not include {call.model}; it includes: {', '.join(plan.models) or 'none'}"
            body = error_body(call.client_api, 403, message, "permission_error", "model_not_allowed")
            return Result(status=403, body=body, error=message, billed=False)
        if plan.max_tokens is not None:
            factor = plan.urgent_factor if call.urgent else Decimal(1)
            cap = int(plan.max_tokens * factor)
            asked = call.request.max_tokens
            if asked is None or asked > cap:
                call.details["plan_max_tokens"] = {"asked": asked, "cap": cap, "urgent": call.urgent}
                return _with_max_tokens(call, cap)
        return call


def _with_max_tokens(call: Call, cap: int) -> Call:
    body = dict(call.body)
    if call.client_api == "anthropic" or ("max_tokens" in body and "max_completion_tokens" not in body):
        body["max_tokens"] = cap
    else:
        body["max_completion_tokens"] = cap
        body.pop("max_tokens", None)
    return call.replace(body=body, request=replace(call.request, max_tokens=cap), input_tokens=call.input_tokens)


def line_for(budget: Budget, subject: str, period: Period, amount: int, now: datetime) -> Line:
    window = budget.window
    if window.kind == "rolling":
        return Line(
            key=line_key(budget.id, subject, period.key),
            amount=amount,
            limit=budget.limit,
            rolling_ms=window.seconds * 1000,
            bucket_ms=window.bucket_seconds * 1000,
            ttl_s=window.seconds + 2 * window.bucket_seconds + 60,
        )
    assert period.reset is not None
    ttl = math.ceil((period.reset - now).total_seconds()) + _DAY
    return Line(key=line_key(budget.id, subject, period.key), amount=amount, limit=budget.limit, ttl_s=ttl)


def amount_json(unit: str, units: int) -> str | int:
    return format_usd(units_to_usd(units)) if unit == "usd" else units
