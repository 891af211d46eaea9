"""Budgets, plans and rate limits of one runtime (the gateway's or the in-process client's),
built from their config sections: the shared store, the budget engine, the rate limiter, the
provider pacer, and the pipeline steps."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from thrifty.config.budgets import AdminSpec, BudgetsSpec, PlansSpec, RateLimitsSpec
from thrifty.core.pricing import PriceBook
from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline.alerts import AlertSender
from thrifty.pipeline.budgets.engine import BudgetEngine, RoutesOf
from thrifty.pipeline.budgets.step import BudgetStep
from thrifty.pipeline.call import Step
from thrifty.pipeline.steps.ratelimit import ProviderPacer, RateLimiter, RateLimitStep
from thrifty.stores.budgets import BudgetStore, open_budget_store

__all__ = ["Limits"]

log = logging.getLogger("thrifty.budgets")


@dataclass
class Limits:
    store: BudgetStore
    engine: BudgetEngine
    limiter: RateLimiter | None
    pacer: ProviderPacer | None
    admin: AdminSpec

    @classmethod
    def build(
        cls,
        *,
        store_url: str,
        budgets: BudgetsSpec,
        plans: PlansSpec | None,
        rate_limits: RateLimitsSpec,
        admin: AdminSpec | None,
        prices: PriceBook,
        counter: TokenCounter,
        writer: object | None,
    ) -> Limits:
        store = open_budget_store(store_url, prefix=budgets.key_prefix, lease_s=budgets.lease_s)
        alerts = AlertSender(
            writer,  # type: ignore[arg-type]
            webhook_url=budgets.alerts.webhook_url,
            webhook_headers=budgets.alerts.webhook_headers,
            attempts=budgets.alerts.webhook_attempts,
            timeout_s=budgets.alerts.webhook_timeout_s,
            backoff_s=budgets.alerts.webhook_backoff_s,
        )
        engine = BudgetEngine(
            store,
            prices=prices,
            counter=counter,
            alerts=alerts,
            plans=plans,
            initial=budgets.budgets(),
            timezone=budgets.timezone,
            fail_open=budgets.fail_open,
            unpriced=budgets.unpriced,
            default_max_output=budgets.default_max_output_tokens,
            refresh_s=budgets.refresh_s,
            lease_s=budgets.lease_s,
        )
        limiter = None
        if rate_limits.limits:
            limiter = RateLimiter(
                store,
                [spec.limit() for spec in rate_limits.limits],
                counter,
                max_wait_s=rate_limits.max_wait_s,
                fail_open=rate_limits.fail_open,
                default_max_output=budgets.default_max_output_tokens,
            )
        pacer = (
            ProviderPacer(counter, max_wait_s=rate_limits.pacing_max_wait_s) if rate_limits.provider_pacing else None
        )
        return cls(store=store, engine=engine, limiter=limiter, pacer=pacer, admin=admin or AdminSpec())

    def steps(self, routes_of: RoutesOf) -> list[Step]:
        """Budgets (with plans), then rate limits: a call refused by its budget takes no rate."""
        steps: list[Step] = [BudgetStep(self.engine, routes_of)]
        if self.limiter is not None:
            steps.append(RateLimitStep(self.limiter, routes_of))
        return steps

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()
