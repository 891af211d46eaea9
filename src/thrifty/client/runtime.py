"""The in-process runtime: the gateway's pipeline (prices, ledger, retries) without a proxy.

It runs on an event loop of its own, in a background thread, so that sync and async SDK clients,
and async clients used from several event loops, all share one HTTP pool and one ledger writer.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from thrifty.config.budgets import LimitsConfig, budget_store_url
from thrifty.config.cache import CacheSpec
from thrifty.config.routing import OptimisationSpec
from thrifty.core.pricing import PriceBook
from thrifty.core.routing.checks import AnswerCheck
from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline import Call, Pipeline, Result, Step
from thrifty.pipeline.cache import ExactCacheStep
from thrifty.pipeline.dispatch import Dispatcher, RetryPolicy, Route, Routes
from thrifty.pipeline.limits import Limits
from thrifty.pipeline.optimisation import Optimisation
from thrifty.pipeline.record import RecordStep
from thrifty.providers.upstream import new_session
from thrifty.stores.cache import LocalCache
from thrifty.stores.ledger import LedgerWriter, open_ledger

if TYPE_CHECKING:
    from thrifty.semantic.service import SemanticService

__all__ = ["InProcessRuntime"]

T = TypeVar("T")

_DEFAULT_POLICY = RetryPolicy(
    attempts=3, attempt_timeout=600.0, connect_timeout=10.0, backoff_base=0.25, backoff_max=8.0, retry_after_max=30.0
)


class InProcessRuntime:
    def __init__(
        self,
        *,
        ledger_url: str,
        journal_dir: Path,
        prices: PriceBook,
        policy: RetryPolicy = _DEFAULT_POLICY,
        limits: LimitsConfig | None = None,
        optimise: OptimisationSpec | None = None,
        checks: Sequence[AnswerCheck] = (),
        cache: CacheSpec | None = None,
    ) -> None:
        self.prices = prices
        self.counter = TokenCounter()
        self.ledger = open_ledger(ledger_url)
        self.writer = LedgerWriter(self.ledger, journal_dir=journal_dir)
        self.writer.start()
        self.policy = policy
        self._record = RecordStep(prices, self.writer, self.counter)
        # Compression, output caps and routing, as in the gateway (built once).
        optimisation = Optimisation.in_process(optimise, prices, self.counter, checks=checks) if optimise else None
        self._optimised = optimisation.steps(self._record.record) if optimisation is not None else []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="thrifty-client-loop", daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession = self.submit(self._new_session()).result()
        self.limits: Limits | None = None
        if limits is not None:  # budgets, plans and rate limits, as in the gateway
            self.limits = Limits.build(
                store_url=budget_store_url(limits.budgets, None, ledger_url),
                budgets=limits.budgets,
                plans=limits.plans,
                rate_limits=limits.rate_limits,
                admin=None,
                prices=prices,
                counter=self.counter,
                writer=self.writer,
            )
            self.submit(self.limits.start()).result()
        # The exact and semantic response caches, as in the gateway (the gateway's ``cache:`` config).
        self.cache = cache if cache is not None else CacheSpec()
        self.response_cache: LocalCache | None = None
        self.semantic: SemanticService | None = None
        self._cache_steps: list[Step] = []
        if self.cache.exact.enabled or self.cache.semantic.enabled:
            cache_path = _cache_path(ledger_url, journal_dir)
            self.response_cache = LocalCache(cache_path, self.cache.exact.memory_entries)
            if self.cache.exact.enabled:
                self._cache_steps.append(ExactCacheStep(self.response_cache, self.cache.exact, prices))
            if self.cache.semantic.enabled:
                from thrifty.pipeline.semantic import SemanticCacheStep  # numpy, onnxruntime: only when on
                from thrifty.semantic.service import SemanticService

                self.semantic = SemanticService.open(self.cache, self.response_cache, cache_path)
                self.submit(self.semantic.start()).result()  # loads the embedding model now
                step = SemanticCacheStep(
                    self.semantic, self.cache, prices, record=self._record.record, counter=self.counter
                )
                self._cache_steps.append(step)
        self._closed = False
        atexit.register(self.close)

    @staticmethod
    async def _new_session() -> aiohttp.ClientSession:
        return new_session()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the runtime's loop, from any thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _run(self, call: Call, route: Route) -> Result:
        if self.limits is None and not self._optimised:
            dispatcher = Dispatcher(Routes([route]), self._session, self.policy, self.counter)
            return await Pipeline([self._record, *self._cache_steps], dispatcher).run(call)

        def routes_of(model: str) -> list[Route]:
            # The SDK's own endpoint serves any model it names (a budget may downgrade the call).
            same = model == route.name
            return [route if same else replace(route, name=model, upstream_model=model, priced_as=model)]

        pacer = self.limits.pacer if self.limits is not None else None

        async def dispatch(call: Call) -> Result:
            return await Dispatcher(
                Routes(routes_of(call.model)), self._session, self.policy, self.counter, pacer=pacer
            )(call)

        limit_steps = self.limits.steps(routes_of) if self.limits is not None else []
        steps = [self._record, *self._cache_steps, *self._optimised, *limit_steps]
        return await Pipeline(steps, dispatch).run(call)

    def run(self, call: Call, route: Route) -> Future[Result]:
        return self.submit(self._run(call, route))

    def next_chunk(self, events: AsyncIterator[bytes]) -> Future[bytes]:
        """The stream's next chunk; the future raises StopAsyncIteration at its end."""

        async def step() -> bytes:
            return await events.__anext__()

        return self.submit(step())

    def close_stream(self, events: AsyncIterator[bytes]) -> Future[None]:
        async def close() -> None:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

        return self.submit(close())

    def close(self) -> None:
        """Flush the ledger and stop the loop. Safe to call twice; runs at interpreter exit."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.limits is not None:
                self.submit(self.limits.stop()).result(timeout=15)
            if self.semantic is not None:
                self.submit(self.semantic.stop()).result(timeout=30)  # saves the local index
            if self.response_cache is not None:
                self.submit(self.response_cache.close()).result(timeout=10)
            self.submit(self._session.close()).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self.writer.close(timeout=10.0)
            self.ledger.close()


def _cache_path(ledger_url: str, journal_dir: Path) -> Path:
    """The SQLite file of the response cache: the ledger's own, or ``cache.db`` beside the journal."""
    if ledger_url.startswith("sqlite:///") and not ledger_url.endswith(":memory:"):
        return Path(ledger_url.removeprefix("sqlite:///"))
    return Path(journal_dir).parent / "cache.db"
