"""A gateway's pipeline, built from its config as ``gateway.runtime`` builds it (the same
``build(CHAT_STEPS, ...)``, the same routes, prices, routers and caches), with three parts
swapped for a replay: ledger rows go to a list, the provider is the replay transport, and the
caches live in memory on the traffic's own clock (an entry expires by the times the calls were
made, not by the time of the replay). Budgets and rate limits are not replayed: they would hold
the replay to the live gateway's spend and windows."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.config.gateway import GatewayConfig
from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing import Catalogue, PriceBook
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.tokens.encodings import Encodings
from thrifty.gateway.runtime import build_price_book, build_routes
from thrifty.pipeline import Call, Pipeline, Result
from thrifty.pipeline.attempts import AttemptLedger
from thrifty.pipeline.build import CHAT_STEPS, Sections, Services, build, retry_policy
from thrifty.pipeline.call import Attribution
from thrifty.pipeline.optimisation import Optimisation
from thrifty.pipeline.steps.dispatch import Dispatcher, Routes
from thrifty.replay.traffic import TrafficItem
from thrifty.replay.transport import ReplayTransport, Target
from thrifty.stores.cache import LocalCache
from thrifty.wire.formats import wire_format

if TYPE_CHECKING:
    from thrifty.semantic.service import SemanticService

__all__ = ["Collected", "ReplayRuntime"]


@dataclass
class Collected:
    """The replay's ledger: every row the record step submits, in order."""

    records: list[LedgerRecord] = field(default_factory=list)

    def submit(self, record: LedgerRecord) -> None:
        self.records.append(record)


async def _no_pause(seconds: float) -> None:
    """Retries in a replay wait for nothing."""


class ReplayRuntime:
    def __init__(
        self,
        config: GatewayConfig,
        prices: PriceBook,
        routes: Routes,
        counter: TokenCounter,
        optimisation: Optimisation | None,
        *,
        semantic: bool,
        default_output_tokens: int | None,
    ) -> None:
        self.config = config
        self.prices = prices
        self.routes = routes
        self.counter = counter
        self.optimisation = optimisation
        self.sink = Collected()
        self.target = Target(default_output_tokens=default_output_tokens)
        self.transport = ReplayTransport(routes, counter, self.target)
        self.dispatcher = Dispatcher(
            routes,
            self.transport,
            retry_policy(config.retry),
            counter,
            sleep=_no_pause,
            prompt_breakpoints=config.cache.prompt.anthropic_breakpoints,
            attempts=AttemptLedger(prices, self.sink, counter),
        )
        self.now = 0.0
        """The traffic's clock: the time of the call being replayed (Unix seconds)."""
        self.use_semantic = semantic
        self.response_cache: LocalCache | None = None
        self.semantic_service: SemanticService | None = None
        self.pipeline: Pipeline | None = None
        self._serial = 0

    @classmethod
    def from_config(
        cls,
        config: GatewayConfig,
        base_dir: Path,
        *,
        prices: PriceBook | None = None,
        catalogue: Catalogue | None = None,
        encodings: Encodings | None = None,
        semantic: bool = True,
        default_output_tokens: int | None = None,
    ) -> ReplayRuntime:
        """``prices``: the price book to use instead of the config's (a what-if's overrides);
        ``semantic``: False leaves the semantic cache out even when the config has it on."""
        book = prices if prices is not None else build_price_book(config, base_dir, catalogue)
        for model in config.models:
            book.quote(model.priced_as)  # an unpriced model is a config error, found now
        counter = TokenCounter(encodings)
        routes = build_routes(config, book)
        optimisation = Optimisation.for_gateway(config, routes, book, counter, base_dir)
        return cls(
            config,
            book,
            routes,
            counter,
            optimisation,
            semantic=semantic,
            default_output_tokens=default_output_tokens,
        )

    async def start(self) -> None:
        cache = self.config.cache
        semantic_on = cache.semantic.enabled and self.use_semantic
        if cache.exact.enabled or semantic_on:
            self.response_cache = LocalCache(":memory:", cache.exact.memory_entries, clock=lambda: self.now)
            if semantic_on:
                from thrifty.semantic.service import SemanticService  # numpy, onnxruntime: only when on

                local = cache.model_copy(update={"semantic": cache.semantic.model_copy(update={"index": "local"})})
                self.semantic_service = SemanticService(local, self.response_cache)
                await self.semantic_service.start()
        await self._share_router_embedder()
        services = Services(
            prices=self.prices,
            writer=self.sink,
            counter=self.counter,
            routes_of=self.routes.chain,
            response_cache=self.response_cache,
            semantic=self.semantic_service,
            optimisation=self.optimisation,
        )
        steps = build(CHAT_STEPS, Sections.of_gateway(self.config), services)
        self.pipeline = Pipeline(steps, self._terminal)

    async def _share_router_embedder(self) -> None:
        """As the gateway does: a learned router on the semantic cache's model uses its copy."""
        from dataclasses import replace

        learned = self.optimisation.learned if self.optimisation is not None else None
        if learned is None or self.optimisation is None:
            return
        service = self.semantic_service
        if service is not None and service.embedder.name == learned.embedder.name:
            self.optimisation.learned = replace(learned, embedder=service.embedder)
            return
        load = getattr(learned.embedder, "load", None)
        if callable(load):
            await asyncio.to_thread(load)

    async def _terminal(self, call: Call) -> Result:
        self.target.sent = call
        return await self.dispatcher(call)

    def serves(self, model: str) -> bool:
        return self.routes.get(model) is not None

    async def run(self, item: TrafficItem) -> list[LedgerRecord]:
        """``item`` through the pipeline, its stream (if it asked for one) read to its end; the
        rows it made (the call's own is the last)."""
        assert self.pipeline is not None, "start() first"
        captured = item.call
        self.now = captured.ts.timestamp()
        self.target.item = captured
        self._serial += 1
        body = captured.body
        call = Call(
            request_id=captured.id or f"replay-{item.line}-{self._serial}",
            client_api="anthropic" if captured.api == "anthropic" else "openai",
            body=body,
            request=wire_format(captured.api).parse_request(body),
            model=item.model,
            stream=item.stream,
            attribution=Attribution(
                user=captured.user,
                team=captured.team,
                feature=captured.feature,
                key_id=captured.key_id,
                tags=captured.tags,
            ),
            ts=captured.ts,
            started=time.perf_counter(),
            include_usage=captured.include_usage,
            cache_directive=captured.cache_directive,
            cache_version=captured.cache_version,
            urgent=captured.urgent,
            hints=dict(captured.hints),
        )
        first = len(self.sink.records)
        result = await self.pipeline.run(call)
        if result.events is not None:
            async for _ in result.events:
                pass
        records = self.sink.records[first:]
        del self.sink.records[first:]
        return records

    async def stop(self) -> None:
        if self.semantic_service is not None:
            await self.semantic_service.stop()
            self.semantic_service = None
        if self.response_cache is not None:
            await self.response_cache.close()
            self.response_cache = None
