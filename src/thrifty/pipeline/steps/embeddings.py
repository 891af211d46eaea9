"""Embeddings through the same steps as chat, for both faces: the record step (priced from the
provider's usage), the exact embedding cache, budgets and rate limits, then the provider.

Embeddings are deterministic, so identical requests (same model, input, ``dimensions``,
``encoding_format``; not who asked) from one tenant get the stored answer, at no cost. There is no
fallback to another model: another model's vectors live in another space, and a caller mixing them
would get nonsense, silently.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from thrifty.config.cache import ExactCacheSpec
from thrifty.core.cache_key import exact_key, namespace_for
from thrifty.core.pricing import PriceBook
from thrifty.core.retry import backoff_delay
from thrifty.core.usage import Usage
from thrifty.errors import error_body
from thrifty.pipeline.call import Call, Next, Result
from thrifty.pipeline.steps.cache import cache_hit_result, encode_entry, load_entry, settled, ttl_for
from thrifty.pipeline.steps.dispatch import RetryPolicy, Route, answered_by
from thrifty.providers.retrying import post_retrying
from thrifty.providers.transport import Timeouts, Transport
from thrifty.stores.cache import ResponseCache

if TYPE_CHECKING:
    from thrifty.pipeline.services import Sections, Services

__all__ = ["EmbeddingsCacheStep", "EmbeddingsDispatcher"]

log = logging.getLogger("thrifty.dispatch")

_API = "embeddings"
"""The cache entries' ``api``: an embeddings entry never answers a chat request, nor the reverse."""


class EmbeddingsCacheStep:
    def __init__(self, cache: ResponseCache, spec: ExactCacheSpec, prices: PriceBook) -> None:
        self.cache = cache
        self.spec = spec
        self.prices = prices

    @classmethod
    def from_config(cls, sections: Sections, services: Services) -> EmbeddingsCacheStep | None:
        """``cache.exact`` again: embeddings are exact-cached by the same switch and store."""
        spec = sections.cache.exact
        if not spec.enabled or services.response_cache is None:
            return None
        return cls(services.response_cache, spec, services.prices)

    async def __call__(self, call: Call, next_step: Next) -> Result:
        spec = self.spec
        if not spec.enabled or call.cache_directive == "off":
            return settled(await next_step(call.replace(cache_status="bypass")), "bypass")
        who = call.attribution
        namespace = namespace_for(spec.scope, team=who.team, key_id=who.key_id, user=who.user)
        key = exact_key(call.body, _API, call.model, call.cache_version)
        stored = await self.cache.get(namespace, key)
        if stored is not None:
            entry = load_entry(stored)
            if entry is not None and entry.get("api") == _API:
                return cache_hit_result(call, entry, "hit", "exact_cache", self.prices)
        call = call.replace(cache_status="miss")
        result = settled(await next_step(call), "miss")
        body = result.body
        if result.status == 200 and body is not None and len(body) <= spec.max_entry_bytes:
            value = encode_entry(call, result, body, result.usage, self.prices, api=_API)
            await self.cache.put(namespace, key, value, ttl_for(spec, namespace))
        return result


class EmbeddingsDispatcher:
    """The last step: the call's one model, retried as the policy says."""

    def __init__(
        self,
        routes_of: Callable[[str], list[Route]],
        transport: Transport,
        policy: RetryPolicy,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        self.routes_of = routes_of
        self.transport = transport
        self.policy = policy
        self.random = random_source
        self._timeouts = Timeouts(connect=policy.connect_timeout, total=policy.attempt_timeout)

    async def __call__(self, call: Call) -> Result:
        route = self.routes_of(call.model)[0]
        payload = orjson.dumps({**call.body, "model": route.upstream_model})
        url = route.upstream.embeddings_url(route.upstream_model)
        retries = self.policy.attempts - 1

        def say_retry(problem: str, attempt: int, pause: float) -> None:
            log.warning(
                "call %s: %s: upstream %s; retry %d of %d in %.2f s",
                call.request_id,
                route.name,
                problem,
                attempt,
                retries,
                pause,
            )

        outcome = await post_retrying(
            self.transport,
            url,
            payload,
            route.upstream.headers(),
            self._timeouts,
            attempts=self.policy.attempts,
            backoff=self._backoff,
            on_retry=say_retry,
        )
        call.details["attempts"] = [{"model": route.name, **note} for note in outcome.attempts]
        if outcome.problem is None:
            return self._answer(call, route, outcome.body)
        problem = f"{route.name}: upstream {outcome.problem}"
        log.warning("call %s: %s; answering %d", call.request_id, problem, outcome.status)
        body = outcome.body or error_body("openai", outcome.status, problem, "api_error")
        return Result(status=outcome.status, body=body, error=problem, billed=False, served_model=route.name)

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self.policy.backoff_base, self.policy.backoff_max, self.random)

    def _answer(self, call: Call, route: Route, raw: bytes) -> Result:
        """The provider's answer, priced from its own usage; thrifty's exact count of the input
        where it reports none (flagged in the row)."""
        usage: Usage | None = None
        try:
            reported = orjson.loads(raw).get("usage")
            if isinstance(reported, dict):
                tokens = reported.get("prompt_tokens", reported.get("total_tokens"))
                if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
                    usage = Usage(input_tokens=tokens)
        except (orjson.JSONDecodeError, AttributeError):
            usage = None
        if usage is None:
            usage = Usage(input_tokens=call.input_tokens.get(route.priced_as, 0))
            call.details["usage_estimated"] = True
        return answered_by(route, body=raw, usage=usage)
