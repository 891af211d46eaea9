"""The most a call can cost before it is sent, over the routes it may take (its model and the
fallbacks): what budgets reserve and rate limits weigh."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from thrifty.core.budgets import Subject, max_call_cost, max_output_tokens
from thrifty.core.pricing import PriceBook, UnknownModelError
from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline.call import Call
from thrifty.pipeline.steps.dispatch import Route

__all__ = ["Estimate", "RoutesOf", "count_input", "estimate", "subject_of"]

RoutesOf = Callable[[str], Sequence[Route]]
"""A public model's routes: the model, then its fallbacks (the call may be served by any)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """The most a call can use: its input tokens, its output bound, and the dearest of its routes."""

    input_tokens: int
    max_output: int
    max_usd: Decimal | None
    """None: a route's price is unknown."""

    @property
    def max_tokens(self) -> int:
        return self.input_tokens + self.max_output


def count_input(call: Call, counter: TokenCounter, model: str) -> int:
    tokens = call.input_tokens.get(model)
    if tokens is None:
        tokens = call.input_tokens[model] = counter.count_request(call.request, model).input_tokens
    return tokens


def estimate(
    call: Call, routes: Sequence[Route], counter: TokenCounter, prices: PriceBook | None, default_max_output: int
) -> Estimate:
    """The worst case over the routes the call may take (its model and the fallbacks). The input is
    billed once; the output bound is per choice, times the choices asked for (``n``)."""
    choices = call.request.choices
    if not routes:
        tokens = count_input(call, counter, call.model)
        out = max_output_tokens(call.request.max_tokens, None, None, tokens, default_max_output) * choices
        usd = _max_usd(prices, call, call.model, None, tokens, out, cache_writes=call.client_api == "anthropic")
        return Estimate(tokens, out, usd)
    worst_tokens, worst_out, worst_usd = 0, 0, Decimal(0)
    unknown = False
    for route in routes:
        tokens = count_input(call, counter, route.priced_as)
        out = choices * max_output_tokens(
            call.request.max_tokens, route.max_output_tokens, route.context_window, tokens, default_max_output
        )
        if prices is not None:
            usd = _max_usd(
                prices,
                call,
                route.priced_as,
                route.upstream.provider_id,
                tokens,
                out,
                cache_writes=route.upstream.wire == "anthropic",
            )
            if usd is None:
                unknown = True
            else:
                worst_usd = max(worst_usd, usd)
        worst_tokens = max(worst_tokens, tokens)
        worst_out = max(worst_out, out)
    return Estimate(worst_tokens, worst_out, None if unknown or prices is None else worst_usd)


def _max_usd(
    prices: PriceBook | None,
    call: Call,
    model: str,
    provider: str | None,
    tokens: int,
    out: int,
    *,
    cache_writes: bool,
) -> Decimal | None:
    if prices is None:
        return None
    try:
        rates = prices.quote(model, provider=provider, at=call.ts).rates
    except UnknownModelError:
        return None
    return max_call_cost(rates, tokens, out, cache_writes=cache_writes)


def subject_of(call: Call, route: Route | None = None) -> Subject:
    who = call.attribution
    deployment = f"{route.upstream.name}/{route.upstream_model}" if route is not None else None
    return Subject(
        user=who.user,
        team=who.team,
        feature=who.feature,
        key=who.key_id,
        tags=who.tags,
        model=call.model,
        deployment=deployment,
    )
