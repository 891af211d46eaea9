"""Rate limits: requests and tokens per minute per key, user, team, model and upstream deployment,
counted in sliding windows in the shared store (so N gateway processes admit what one would);
and pacing by the providers' own rate-limit headers, so calls wait before a provider refuses.

Tokens are weighted as the providers weigh them: a call's input tokens plus its max_tokens (or
the most it can generate). Over a limit a call waits up to ``max_wait_s`` for room, else it gets
429 with Retry-After; a call that could never fit is refused at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from thrifty.core.budgets import RateLimit
from thrifty.core.tokens.counter import TokenCounter
from thrifty.errors import error_body
from thrifty.pipeline.budgets.estimate import RoutesOf, estimate, subject_of
from thrifty.pipeline.call import Call, Next, Result
from thrifty.pipeline.steps.dispatch import Route

if TYPE_CHECKING:
    from thrifty.pipeline.services import Sections, Services
from thrifty.stores.budgets import BudgetStore, RateLine, StoreUnavailable
from thrifty.stores.budgets.base import SEP

__all__ = ["ProviderPacer", "RateLimitStep", "RateLimiter"]

log = logging.getLogger("thrifty.ratelimit")


class RateLimiter:
    def __init__(
        self,
        store: BudgetStore,
        limits: Sequence[RateLimit],
        counter: TokenCounter,
        *,
        max_wait_s: float = 2.0,
        fail_open: bool = False,
        default_max_output: int = 16_384,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.limits = list(limits)
        self.counter = counter
        self.max_wait_s = max_wait_s
        self.fail_open = fail_open
        self.default_max_output = default_max_output
        self.sleep = sleep
        self.needs_route = any(limit.scope == "deployment" for limit in self.limits)
        self.needs_tokens = any(limit.tokens is not None for limit in self.limits)

    def lines(self, call: Call, routes: Sequence[Route]) -> tuple[list[RateLine], list[tuple[RateLimit, str, str]]]:
        subject = subject_of(call, routes[0] if routes else None)
        tokens = 0
        if self.needs_tokens:
            tokens = estimate(call, routes[:1], self.counter, None, self.default_max_output).max_tokens
        lines: list[RateLine] = []
        what: list[tuple[RateLimit, str, str]] = []
        for limit in self.limits:
            for value in limit.subjects(subject):
                base = f"{limit.id}{SEP}{value}"
                if limit.requests is not None:
                    lines.append(RateLine(base + f"{SEP}r", 1, limit.requests, limit.window_s * 1000, limit.bucket_ms))
                    what.append((limit, value, "requests"))
                if limit.tokens is not None:
                    lines.append(
                        RateLine(base + f"{SEP}t", tokens, limit.tokens, limit.window_s * 1000, limit.bucket_ms)
                    )
                    what.append((limit, value, "tokens"))
        return lines, what

    async def admit(self, call: Call, lines: list[RateLine], what: list[tuple[RateLimit, str, str]]) -> Result | None:
        deadline = time.monotonic() + self.max_wait_s
        waited = 0.0
        while True:
            try:
                refusal = await self.store.admit(lines)
            except StoreUnavailable as error:
                if self.fail_open:
                    log.error(
                        "rate limits: %s; call %s let through (rate_limits.fail_open: true)", error, call.request_id
                    )
                    call.details["rate_limit"] = "store unreachable: let through (fail_open)"
                    return None
                message = (
                    f"rate limits cannot be checked ({error}); limited calls are refused until the store is back "
                    "(rate_limits.fail_open: false)"
                )
                log.error("rate limits: %s; call %s refused", error, call.request_id)
                body = error_body(call.client_api, 503, message, "api_error", "rate_limit_store_unavailable")
                return Result(status=503, body=body, error=message, billed=False)
            if refusal is None:
                call.details["rate_limit_admitted_at"] = round(time.time(), 4)
                if waited:
                    call.details["rate_limit_wait_s"] = round(waited, 3)
                return None
            limit, value, kind = what[refusal.index]
            line = lines[refusal.index]
            who = "all calls" if limit.scope == "global" else f"{limit.scope} {value}"
            per = "minute" if limit.window_s == 60 else f"{limit.window_s} s"
            if refusal.wait_s is None:
                message = (
                    f"this call needs {line.amount:,} {kind} (input tokens plus max_tokens), more than the limit of "
                    f"{line.limit:,} {kind} per {per} for {who}: it can never fit; "
                    "lower max_tokens or shorten the prompt"
                )
                return _limited(call, message, None)
            left = deadline - time.monotonic()
            if refusal.wait_s <= left:
                pause = refusal.wait_s + random.uniform(0, 0.02)  # spread the waiters' retries
                await self.sleep(pause)
                waited += pause
                continue
            retry = max(1, math.ceil(refusal.wait_s))
            message = (
                f"rate limit reached: {who} may use {line.limit:,} {kind} per {per}; {refusal.used:,} used in the "
                f"current window and this call needs {line.amount:,}; retry after {retry} s"
            )
            return _limited(call, message, retry)


def _limited(call: Call, message: str, retry_after: int | None) -> Result:
    body = error_body(call.client_api, 429, message, "rate_limit_error", "rate_limit_exceeded")
    headers = [(b"retry-after", str(retry_after).encode())] if retry_after is not None else []
    return Result(status=429, body=body, headers=headers, error=message, billed=False)


class RateLimitStep:
    def __init__(self, limiter: RateLimiter, routes_of: RoutesOf) -> None:
        self.limiter = limiter
        self.routes_of = routes_of

    @classmethod
    def from_config(cls, sections: Sections, services: Services) -> RateLimitStep | None:
        """On when ``rate_limits.limits`` names any (read into ``services.limits``)."""
        limiter = services.limits.limiter if services.limits is not None else None
        return cls(limiter, services.routes_of) if limiter is not None else None

    async def __call__(self, call: Call, next_step: Next) -> Result:
        limiter = self.limiter
        routes = self.routes_of(call.model) if (limiter.needs_route or limiter.needs_tokens) else ()
        lines, what = limiter.lines(call, routes)
        if lines:
            refused = await limiter.admit(call, lines, what)
            if refused is not None:
                return refused
        return await next_step(call)


# -- pacing by the providers' headers ----------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    """A provider's bucket as its last headers described it, refilling continuously until full."""

    limit: float
    level: float
    at: float
    per_second: float

    def available(self, now: float) -> float:
        return min(self.limit, self.level + (now - self.at) * self.per_second)


class ProviderPacer:
    """Holds a call back while the provider's last rate-limit headers say it would be refused:
    ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (OpenAI and compatible servers) and
    ``anthropic-ratelimit-{requests,tokens,input-tokens}-{limit,remaining,reset}`` (Anthropic).
    Kept per process and per deployment; the provider's headers are the shared truth."""

    def __init__(
        self, counter: TokenCounter, *, max_wait_s: float = 10.0, sleep: Callable[[float], Any] = asyncio.sleep
    ) -> None:
        self.counter = counter
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def observe(self, route: Route, headers: Mapping[str, str]) -> None:
        lower = {}
        for name, value in headers.items():
            key = name.lower()
            if "ratelimit" in key:
                lower[key] = value
        if not lower:
            return
        deployment = f"{route.upstream.name}/{route.upstream_model}"
        now = time.monotonic()
        for kind, names in _HEADER_NAMES.items():
            for limit_name, remaining_name, reset_name in names:
                if remaining_name in lower:
                    self._update(
                        deployment, kind, lower.get(limit_name), lower[remaining_name], lower.get(reset_name), now
                    )
                    break

    def _update(
        self, deployment: str, kind: str, limit: str | None, remaining: str, reset: str | None, now: float
    ) -> None:
        try:
            level = float(remaining)
            cap = float(limit) if limit is not None else None
        except ValueError:
            return
        seconds = _reset_seconds(reset) if reset is not None else None
        cap = cap if cap is not None else level
        # Providers refill continuously: from the time to full when it says something, else per minute.
        per_second = (cap - level) / seconds if seconds and seconds > 0 and cap > level else cap / 60
        self._buckets[(deployment, kind)] = _Bucket(cap, level, now, per_second)

    async def before(self, call: Call, route: Route) -> None:
        """Wait until the deployment's buckets can take the call (at most ``max_wait_s``)."""
        if not self._buckets:
            return  # no provider has sent rate-limit headers yet
        deployment = f"{route.upstream.name}/{route.upstream_model}"
        requests = self._buckets.get((deployment, "requests"))
        tokens = self._buckets.get((deployment, "tokens"))
        if requests is None and tokens is None:
            return
        need_tokens = 0
        if tokens is not None:
            counted = call.input_tokens.get(route.priced_as)
            prompt = counted if counted is not None else call.body_size // 4  # a rough count is enough here
            need_tokens = prompt + (call.request.max_tokens or route.max_output_tokens or 0)
        now = time.monotonic()
        wait = 0.0
        for bucket, need in ((requests, 1.0), (tokens, float(need_tokens))):
            if bucket is None or need > bucket.limit:
                continue
            have = bucket.available(now)
            if have < need and bucket.per_second not in (0, math.inf):
                wait = max(wait, (need - have) / bucket.per_second)
        if wait > self.max_wait_s:
            call.details["provider_pacing"] = f"the provider's limits ask for {wait:.1f} s; sent without waiting"
            wait = 0.0
        for bucket, need in ((requests, 1.0), (tokens, float(need_tokens))):
            if bucket is not None:
                bucket.level = bucket.available(now) - need  # taken now, so concurrent calls queue behind
                bucket.at = now
        if wait > 0:
            call.details["provider_pacing_s"] = round(wait, 3)
            await self.sleep(wait)


_HEADER_NAMES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "requests": (
        ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
        (
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ),
    ),
    "tokens": (
        ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
        (
            "anthropic-ratelimit-input-tokens-limit",
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
        ),
        (
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ),
    ),
}

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def _reset_seconds(text: str) -> float | None:
    """``6ms``, ``1.5s``, ``1m30s`` (OpenAI), an RFC 3339 time (Anthropic), or plain seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    if "T" in text:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return max(0.0, when.timestamp() - time.time())
    total, matched = 0.0, False
    for number, unit in _GO_DURATION.findall(text):
        matched = True
        total += float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return total if matched else None
