"""The in-process runtime: the gateway's pipeline (prices, ledger, retries) without a proxy.

It runs on an event loop of its own, in a background thread, so that sync and async SDK clients,
and async clients used from several event loops, all share one HTTP pool and one ledger writer.
The pipeline is built once, by the same function as the gateway's; each call's route (the URL the
SDK was pointed at, its headers) travels in a context variable, so one pipeline serves them all.

After ``os.fork()`` the child has neither the loop's thread nor a usable HTTP pool, ledger writer
or store connection: the first call in a child builds all of them anew (the parent's are left to
the parent). A call after ``close()`` raises ``ThriftyClosed`` instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from thrifty.config.budgets import LimitsConfig, budget_store_url
from thrifty.config.cache import CacheSpec
from thrifty.config.gateway import RetrySpec
from thrifty.config.routing import OptimisationSpec
from thrifty.core.pricing import PriceBook
from thrifty.core.routing.checks import AnswerCheck
from thrifty.core.tokens.counter import TokenCounter
from thrifty.errors import ThriftyClosed
from thrifty.pipeline import Call, Pipeline, Result
from thrifty.pipeline.attempts import AttemptLedger
from thrifty.pipeline.build import CHAT_STEPS, EMBEDDING_STEPS, Sections, Services, build, retry_policy
from thrifty.pipeline.feedback import FeedbackService
from thrifty.pipeline.limits import Limits
from thrifty.pipeline.optimisation import Optimisation
from thrifty.pipeline.steps.dispatch import Dispatcher, Route, Routes
from thrifty.pipeline.steps.embeddings import EmbeddingsDispatcher
from thrifty.providers.transport import AiohttpTransport
from thrifty.providers.upstream import new_session
from thrifty.stores.cache import LocalCache
from thrifty.stores.ledger import LedgerWriter, open_ledger
from thrifty.stores.ledger.feedback import FeedbackStore

if TYPE_CHECKING:
    from thrifty.semantic.service import SemanticService

__all__ = ["CallRoute", "InProcessRuntime", "ThriftyClosed"]

T = TypeVar("T")

_MAX_DISPATCHERS = 16
"""Dispatchers kept per distinct attempt timeout (SDK clients' ``timeout=``); more are made per call."""


@dataclass(frozen=True, slots=True)
class CallRoute:
    """Where one in-process call goes: the SDK's own endpoint, and the caller's timeout, if any."""

    route: Route
    attempt_timeout_s: float | None = None


class InProcessRuntime:
    def __init__(
        self,
        *,
        ledger_url: str,
        journal_dir: Path,
        prices: PriceBook,
        retry: RetrySpec | None = None,
        limits: LimitsConfig | None = None,
        optimise: OptimisationSpec | None = None,
        checks: Sequence[AnswerCheck] = (),
        cache: CacheSpec | None = None,
    ) -> None:
        self._arguments: dict[str, Any] = {
            "ledger_url": ledger_url,
            "journal_dir": journal_dir,
            "prices": prices,
            "retry": retry,
            "limits": limits,
            "optimise": optimise,
            "checks": checks,
            "cache": cache,
        }
        self._guard = threading.Lock()
        self._closed = False
        self._inherited: dict[str, Any] = {}
        self._open(**self._arguments)
        atexit.register(self.close)

    def _open(
        self,
        *,
        ledger_url: str,
        journal_dir: Path,
        prices: PriceBook,
        retry: RetrySpec | None,
        limits: LimitsConfig | None,
        optimise: OptimisationSpec | None,
        checks: Sequence[AnswerCheck],
        cache: CacheSpec | None,
    ) -> None:
        self._pid = os.getpid()
        self.prices = prices
        self.counter = TokenCounter()
        self.ledger = open_ledger(ledger_url)
        self.writer = LedgerWriter(self.ledger, journal_dir=journal_dir)
        self.writer.start()
        self.retry = retry if retry is not None else RetrySpec()  # the gateway's defaults
        self._dispatchers: dict[float | None, Dispatcher] = {}
        self._route: ContextVar[CallRoute] = ContextVar("thrifty_call_route")
        # Compression, output caps and routing, as in the gateway.
        optimisation = Optimisation.in_process(optimise, prices, self.counter, checks=checks) if optimise else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="thrifty-client-loop", daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession = self.submit(self._new_session()).result()
        self._transport = AiohttpTransport(self._session)
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
        if self.cache.exact.enabled or self.cache.semantic.enabled:
            cache_path = _cache_path(ledger_url, journal_dir)
            self.response_cache = LocalCache(cache_path, self.cache.exact.memory_entries)
            if self.cache.semantic.enabled:
                from thrifty.semantic.service import SemanticService  # numpy, onnxruntime: only when on

                self.semantic = SemanticService.open(self.cache, self.response_cache, cache_path)
                self.submit(self.semantic.start()).result()  # loads the embedding model now
        services = Services(
            prices=prices,
            writer=self.writer,
            counter=self.counter,
            routes_of=self._routes_of,
            response_cache=self.response_cache,
            semantic=self.semantic,
            optimisation=optimisation,
            limits=self.limits,
        )
        # Verdicts on answers (``Thrifty.feedback``): kept beside the ledger, wrong answers evicted.
        self.feedback = FeedbackService(FeedbackStore(ledger_url), self.cache, self.response_cache, self.semantic)
        sections = Sections.of_client(self.cache, optimise)
        self.pipeline = Pipeline(build(CHAT_STEPS, sections, services), self._dispatch)
        self.embeddings = Pipeline(build(EMBEDDING_STEPS, sections, services), self._embed)

    @staticmethod
    async def _new_session() -> aiohttp.ClientSession:
        return new_session()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the runtime's loop, from any thread (in a forked child: on a loop,
        pool and writer of the child's own, made now)."""
        if self._closed:
            coroutine.close()
            raise ThriftyClosed("this Thrifty is closed: make a new thrifty.Thrifty() (or thrifty.wrap()) to call")
        if os.getpid() != self._pid:
            self._reopen_after_fork()
        return self._on_loop(coroutine)

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _reopen_after_fork(self) -> None:
        with self._guard:
            if os.getpid() != self._pid:  # the parent's thread, pool, writer and stores stay the parent's
                # Kept, never closed nor collected: cleaning up the parent's sockets here would
                # unregister them from the epoll instance parent and child share, and stall the
                # parent's calls.
                self._inherited = dict(vars(self))
                self._open(**self._arguments)
                # multiprocessing's children leave by os._exit, past atexit: its own exit hook
                # writes their rows out (they are journaled either way, and replayed if not).
                from multiprocessing.util import Finalize

                Finalize(self, self.close, exitpriority=100)

    def _routes_of(self, model: str) -> list[Route]:
        """The SDK's own endpoint serves any model it names (a budget may downgrade the call)."""
        route = self._route.get().route
        same = model == route.name
        return [route if same else replace(route, name=model, upstream_model=model, priced_as=model)]

    async def _dispatch(self, call: Call) -> Result:
        timeout = self._route.get().attempt_timeout_s
        dispatcher = self._dispatchers.get(timeout)
        if dispatcher is None:
            dispatcher = Dispatcher(
                _CallRoutes(self._routes_of),
                self._transport,
                retry_policy(self.retry, timeout),
                self.counter,
                pacer=self.limits.pacer if self.limits is not None else None,
                attempts=AttemptLedger(self.prices, self.writer, self.counter),
            )
            if len(self._dispatchers) < _MAX_DISPATCHERS:
                self._dispatchers[timeout] = dispatcher
        return await dispatcher(call)

    async def _embed(self, call: Call) -> Result:
        policy = retry_policy(self.retry, self._route.get().attempt_timeout_s)
        return await EmbeddingsDispatcher(self._routes_of, self._transport, policy)(call)

    async def _run(self, call: Call, where: CallRoute, embeddings: bool) -> Result:
        self._route.set(where)  # this task's own context: concurrent calls do not see each other's
        return await (self.embeddings if embeddings else self.pipeline).run(call)

    def run(
        self, call: Call, route: Route, attempt_timeout_s: float | None = None, *, embeddings: bool = False
    ) -> Future[Result]:
        """Run ``call`` through the chat pipeline, or with ``embeddings`` the embeddings one."""
        return self.submit(self._run(call, CallRoute(route, attempt_timeout_s), embeddings))

    def next_chunk(self, events: AsyncIterator[bytes]) -> Future[bytes]:
        """The stream's next chunk; the future raises StopAsyncIteration at its end."""

        async def step() -> bytes:
            return await events.__anext__()

        return self.submit(step())

    def abandon_stream(self, events: AsyncIterator[bytes]) -> Future[None]:
        """Close a stream its caller never read: it is started first (closing a stream that never
        began would skip its recording), then closed, so it is recorded as the client's leaving."""

        async def abandon() -> None:
            try:
                await events.__anext__()
            except StopAsyncIteration:
                return
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()

        return self._on_loop(abandon())

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
        if os.getpid() != self._pid:
            return  # a forked child that made no call: what is open is the parent's
        try:
            if self.limits is not None:
                self._on_loop(self.limits.stop()).result(timeout=15)
            if self.semantic is not None:
                self._on_loop(self.semantic.stop()).result(timeout=30)  # saves the local index
            if self.response_cache is not None:
                self._on_loop(self.response_cache.close()).result(timeout=10)
            self._on_loop(self._session.close()).result(timeout=10)
            self.feedback.store.close()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self.writer.close(timeout=10.0)
            self.ledger.close()


class _CallRoutes(Routes):
    """The routes of the call in flight: the SDK's endpoint, under whatever model name is asked."""

    def __init__(self, routes_of: Callable[[str], list[Route]]) -> None:
        super().__init__([])
        self._routes_of = routes_of

    def get(self, name: str) -> Route | None:
        return self._routes_of(name)[0]

    def names(self) -> list[str]:
        return []

    def chain(self, name: str) -> list[Route]:
        return self._routes_of(name)


def _cache_path(ledger_url: str, journal_dir: Path) -> Path:
    """The SQLite file of the response cache: the ledger's own, or ``cache.db`` beside the journal."""
    if ledger_url.startswith("sqlite:///") and not ledger_url.endswith(":memory:"):
        return Path(ledger_url.removeprefix("sqlite:///"))
    return Path(journal_dir).parent / "cache.db"
