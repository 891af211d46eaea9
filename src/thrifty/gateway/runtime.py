"""Everything a running gateway holds, built once from its config: prices, routes, the ledger
writer, keys, the upstream pool and the pipeline."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from thrifty.config.budgets import budget_store_url
from thrifty.config.files import ConfigError, load_document
from thrifty.config.gateway import GatewayConfig, PricesSpec
from thrifty.config.prices import price_book_from_document
from thrifty.core.pricing import Catalogue, PriceBook
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.tokens.encodings import Encodings
from thrifty.gateway.auth import KeyCache, is_loopback
from thrifty.pipeline import Pipeline
from thrifty.pipeline.attempts import AttemptLedger
from thrifty.pipeline.budgets.estimate import RoutesOf
from thrifty.pipeline.build import CHAT_STEPS, EMBEDDING_STEPS, Sections, Services, build, retry_policy
from thrifty.pipeline.feedback import FeedbackService
from thrifty.pipeline.limits import Limits
from thrifty.pipeline.optimisation import Optimisation
from thrifty.pipeline.steps.dispatch import Dispatcher, Route, Routes
from thrifty.pipeline.steps.embeddings import EmbeddingsDispatcher
from thrifty.pipeline.watch import AlertClaims, SpendWatch
from thrifty.providers.transport import AiohttpTransport
from thrifty.providers.upstream import Upstream, new_session
from thrifty.stores.cache import LocalCache, RedisCache, ResponseCache
from thrifty.stores.keys import open_keys
from thrifty.stores.ledger import LedgerStore, open_ledger
from thrifty.stores.ledger.feedback import FeedbackStore
from thrifty.stores.ledger.journal_writer import JournalWriter
from thrifty.telemetry import Telemetry

if TYPE_CHECKING:
    from thrifty.batch.service import BatchService
    from thrifty.semantic.service import SemanticService

__all__ = ["Runtime", "build_price_book", "build_routes"]

log = logging.getLogger("thrifty.gateway")


def build_price_book(config: GatewayConfig, base_dir: Path, catalogue: Catalogue | None = None) -> PriceBook:
    """The price file (or inline prices), plus each model's own ``price``."""
    document: dict[str, object] = {"models": []}
    source = "config prices"
    if isinstance(config.prices, str):
        path = Path(config.prices)
        path = path if path.is_absolute() else base_dir / path
        loaded = load_document(path)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a price file must be a mapping (models:, default_price:)")
        document = dict(loaded or {"models": []})
        source = str(path)
    elif isinstance(config.prices, PricesSpec):
        document = config.prices.model_dump(exclude_none=True)
    models = list(document.get("models") or [])  # type: ignore[call-overload]
    models += [m.price.model_dump(exclude_none=True) for m in config.models if m.price is not None]
    document["models"] = models
    return price_book_from_document(document, source, catalogue)


def build_routes(config: GatewayConfig, prices: PriceBook) -> Routes:
    upstreams = {name: Upstream.from_spec(name, spec) for name, spec in config.providers.items()}
    routes = []
    for model in config.models:
        window = model.context_window
        if window is None:
            entry = prices.catalogue.find(model.priced_as)
            window = entry.context_window if entry is not None else None
        routes.append(
            Route(
                name=model.name,
                upstream=upstreams[model.provider],
                upstream_model=model.upstream,
                priced_as=model.priced_as,
                context_window=window,
                max_output_tokens=model.max_output_tokens,
                fallbacks=tuple(model.fallbacks),
                capabilities=frozenset(model.capabilities),
            )
        )
    return Routes(routes)


@dataclass
class Runtime:
    config: GatewayConfig
    prices: PriceBook
    routes: Routes
    counter: TokenCounter
    ledger: LedgerStore
    writer: JournalWriter
    keys: KeyCache
    session: aiohttp.ClientSession | None = None
    dispatcher: Dispatcher | None = None
    response_cache: ResponseCache | None = None
    semantic: SemanticService | None = None
    """The semantic cache (``cache.semantic.enabled``): model and index loaded in ``start``."""
    limits: Limits | None = None
    """Budgets, plans and rate limits (see ``pipeline.limits``)."""
    optimisation: Optimisation | None = None
    """Routing, compression and output caps (see ``pipeline.optimisation``)."""
    pipeline: Pipeline | None = None
    batches: BatchService | None = None
    """``/v1/files`` and ``/v1/batches`` (``batch:``): opened last in ``start``, closed first in ``stop``."""
    embeddings: Pipeline | None = None
    """``/v1/embeddings``' pipeline (``pipeline.embeddings``), built in ``start`` as ``pipeline`` is."""
    feedback: FeedbackService | None = None
    """``POST /v1/thrifty/feedback``: verdicts kept beside the ledger, wrong answers evicted."""
    watch: SpendWatch | None = None
    """Spend anomalies and token drift (``alerts.enabled``), checked in the background."""
    telemetry: Telemetry = field(default_factory=Telemetry)
    """Prometheus metrics and OpenTelemetry spans, from each record the writer is handed."""
    started: bool = field(default=False)

    @classmethod
    def from_config(
        cls,
        config: GatewayConfig,
        base_dir: Path,
        *,
        catalogue: Catalogue | None = None,
        encodings: Encodings | None = None,
    ) -> Runtime:
        """``catalogue`` and ``encodings`` may be shared between runtimes (they are read-only)."""
        prices = build_price_book(config, base_dir, catalogue)
        for model in config.models:
            prices.quote(model.priced_as)  # an unpriced model is a config error, found now
        ledger = open_ledger(config.storage.ledger)  # migrates; also what the admin reads
        writer = JournalWriter(config.storage.resolved_journal_dir(), config.storage.ledger)
        counter = TokenCounter(encodings)
        for model in config.models:
            counter.encoding_for(model.priced_as)  # load vocabularies now, not on a first request
        routes = build_routes(config, prices)
        telemetry = Telemetry.for_gateway(config)
        writer.tap = telemetry.tap()
        return cls(
            telemetry=telemetry,
            config=config,
            prices=prices,
            routes=routes,
            optimisation=Optimisation.for_gateway(config, routes, prices, counter, base_dir),
            counter=counter,
            ledger=ledger,
            writer=writer,
            keys=KeyCache(open_keys(config.storage.ledger), mode=config.auth, loopback=is_loopback(config.server.host)),
            limits=Limits.build(
                store_url=budget_store_url(config.budgets, config.storage.redis, config.storage.ledger),
                budgets=config.budgets,
                plans=config.plans,
                rate_limits=config.rate_limits,
                admin=config.admin,
                prices=prices,
                counter=counter,
                writer=writer,
            ),
        )

    async def start(self) -> None:
        """In the server's event loop (the HTTP pool belongs to it)."""
        self.writer.start()
        await self.telemetry.start()
        self.keys.start()
        self.session = new_session()
        transport = AiohttpTransport(self.session)
        self.dispatcher = Dispatcher(
            self.routes,
            transport,
            retry_policy(self.config.retry),
            self.counter,
            prompt_breakpoints=self.config.cache.prompt.anthropic_breakpoints,
            pacer=self.limits.pacer if self.limits is not None else None,
            attempts=AttemptLedger(self.prices, self.writer, self.counter),
        )
        if self.limits is not None:
            await self.limits.start()
        cache = self.config.cache
        if cache.exact.enabled or cache.semantic.enabled:
            storage = self.config.storage
            self.response_cache = (
                RedisCache(storage.redis)
                if storage.redis
                else LocalCache(storage.local_cache_path(), cache.exact.memory_entries)
            )
            if cache.semantic.enabled:
                from thrifty.semantic.service import SemanticService  # numpy, onnxruntime: only when on

                self.semantic = SemanticService.open(cache, self.response_cache, storage.local_cache_path())
                await self.semantic.start()  # loads the embedding model now, in a worker thread
        await self._share_router_embedder()
        sections = Sections.of_gateway(self.config)
        self.pipeline = Pipeline(build(CHAT_STEPS, sections, self._services(self.routes.chain)), self.dispatcher)
        forward = EmbeddingsDispatcher(self._one_route, transport, retry_policy(self.config.retry))
        self.embeddings = Pipeline(build(EMBEDDING_STEPS, sections, self._services(self._one_route)), forward)
        self.feedback = FeedbackService(
            FeedbackStore(self.config.storage.ledger), cache, self.response_cache, self.semantic
        )
        if self.config.alerts.enabled:
            self.watch = SpendWatch(
                self.config.alerts, self.ledger, AlertClaims(self.config.storage.ledger), self.writer
            )
            self.watch.start()
        from thrifty.gateway.batches import open_batches  # it imports this module's type

        self.batches = open_batches(self)
        self.started = True

    async def _share_router_embedder(self) -> None:
        """A learned router on the semantic cache's model uses the cache's loaded copy (one model
        in memory, one embedding a request, shared through ``Call.embeddings``); a router on a
        model of its own loads it now, not on the first request."""
        learned = self.optimisation.learned if self.optimisation is not None else None
        if learned is None or self.optimisation is None:
            return
        if self.semantic is not None and self.semantic.embedder.name == learned.embedder.name:
            self.optimisation.learned = replace(learned, embedder=self.semantic.embedder)
            return
        load = getattr(learned.embedder, "load", None)
        if callable(load):
            await asyncio.to_thread(load)

    def _one_route(self, name: str) -> list[Route]:
        """An embedding model's route, with no fallbacks (their vectors are another space)."""
        route = self.routes.get(name)
        return [route] if route is not None else []

    def _services(self, routes_of: RoutesOf) -> Services:
        return Services(
            prices=self.prices,
            writer=self.writer,
            counter=self.counter,
            routes_of=routes_of,
            response_cache=self.response_cache,
            semantic=self.semantic,
            optimisation=self.optimisation,
            limits=self.limits,
        )

    async def stop(self) -> None:
        if self.batches is not None:
            await self.batches.stop()
            self.batches = None
        if self.watch is not None:
            await self.watch.stop()
        if self.feedback is not None:
            self.feedback.store.close()
        if self.semantic is not None:
            await self.semantic.stop()  # saves the local index
        if self.response_cache is not None:
            await self.response_cache.close()
        await self.keys.stop()
        if self.limits is not None:
            await self.limits.stop()  # settles what is in flight, releases the rest
        if self.session is not None:
            await self.session.close()
        await self.telemetry.stop()
        self.writer.close(timeout=10.0)
        self.ledger.close()
        self.started = False
