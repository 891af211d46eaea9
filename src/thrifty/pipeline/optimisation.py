"""What routing and compression run on, compiled once per runtime (the gateway's or the in-process
client's) from the config's ``tiers:``, ``routing:`` and ``compression:``: each model's facts
(capabilities, window, price, provider), the tier table, the compiled rules, the learned router
and its embedder, the answer checks. Loading them here, when the config is read, is what makes a
bad router file or check a config error at start. The steps themselves (``CompressionStep``,
``OutputCapStep``, ``RouterStep``) make themselves from their sections and this, in
``from_config``; ``pipeline.build`` puts them in order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import orjson

from thrifty.config.files import ConfigError
from thrifty.config.gateway import GatewayConfig
from thrifty.config.routing import CompressionSpec, OptimisationSpec, OutputCapsSpec, RoutingSpec, RuleSpec
from thrifty.core.pricing import PriceBook, UnknownModelError
from thrifty.core.routing.checks import BUILTIN_CHECKS, AnswerCheck, refusal_check
from thrifty.core.routing.features import WIDE_TEMPERATURE
from thrifty.core.routing.rules import Rule, RuleSet
from thrifty.core.routing.tiers import ModelOption, TierTable
from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline.steps.compression import TextCounter
from thrifty.pipeline.steps.dispatch import Routes
from thrifty.pipeline.steps.routing import LearnedSettings, Pricer

if TYPE_CHECKING:  # numpy: loaded only when a learned router is configured, not by every gateway
    from thrifty.core.routing.embedding import Embedder
    from thrifty.core.routing.learned import LearnedRouter

__all__ = ["ModelFacts", "Optimisation", "compile_rule", "embedder_for", "load_learned_router"]

ALL_CAPABILITIES = frozenset({"tools", "vision", "json", "streaming", WIDE_TEMPERATURE})


class OptimisationSections(Protocol):
    """The config's ``tiers:``, ``routing:``, ``compression:`` and ``output_caps:``: a gateway
    config and the in-process client's ``OptimisationSpec`` both carry them."""

    @property
    def tiers(self) -> dict[str, list[str]]: ...
    @property
    def routing(self) -> RoutingSpec | None: ...
    @property
    def compression(self) -> CompressionSpec | None: ...
    @property
    def output_caps(self) -> OutputCapsSpec | None: ...


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What routing needs to know of a public model."""

    name: str
    priced_as: str
    provider_id: str | None
    capabilities: frozenset[str]
    context_window: int | None


def embedder_for(name: str, available: Sequence[Embedder] = ()) -> Embedder:
    """The embedder a router file names: one of ``available`` (say, the semantic cache's, so a
    request is embedded once), the built-in hashed n-grams, or the local sentence model."""
    from thrifty.core.routing.embedding import HashedNgrams

    for embedder in available:
        if embedder.name == name:
            return embedder
    if name.startswith("hashed-ngrams-v1:"):
        parts = name.split(":")
        try:
            dim = int(parts[1])
        except (IndexError, ValueError):
            raise ConfigError(f"unknown embedder {name!r}") from None
        return HashedNgrams(dim, char_ngrams=not (len(parts) > 2 and parts[2] == "words"))
    try:
        from thrifty.semantic.embedder import OnnxEmbedder
    except ImportError:
        raise ConfigError(f"the router needs the embedder {name!r}, which is not available here") from None
    return OnnxEmbedder(name=name)


def load_learned_router(path: Path) -> LearnedRouter:
    from thrifty.core.routing.learned import LearnedRouter, RouterFileError

    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such router file (make one with `thrifty router train`)") from None
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"{path}: not a router file: {error}") from None
    try:
        return LearnedRouter.from_document(document)
    except RouterFileError as error:
        raise ConfigError(f"{path}: {error}") from None


def _import_check(reference: str) -> AnswerCheck:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"routing.escalation.custom: {reference!r} is not package.module:function")
    try:
        module = importlib.import_module(module_name)
        check = getattr(module, attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"routing.escalation.custom: cannot load {reference!r}: {error}") from None
    if not callable(check):
        raise ConfigError(f"routing.escalation.custom: {reference!r} is not callable")
    return check  # type: ignore[no-any-return]


class Optimisation:
    def __init__(
        self,
        *,
        prices: PriceBook,
        counter: TokenCounter,
        facts_of: Callable[[str], ModelFacts],
        tiers: TierTable | None,
        rules: RuleSet,
        learned: LearnedSettings | None,
        checks: Sequence[AnswerCheck],
    ) -> None:
        self.prices = prices
        self.counter = counter
        self.facts_of = facts_of
        self.tiers = tiers
        self.rules = rules
        self.learned = learned
        self.checks = tuple(checks)
        self.pricer = Pricer(prices, self._resolve)
        self.text_counter = TextCounter(counter)

    def _resolve(self, model: str) -> tuple[str, str | None]:
        facts = self.facts_of(model)
        return facts.priced_as, facts.provider_id

    def priced_as(self, model: str) -> str:
        return self.facts_of(model).priced_as

    @classmethod
    def build(
        cls,
        sections: OptimisationSections,
        *,
        facts_of: Callable[[str], ModelFacts],
        prices: PriceBook,
        counter: TokenCounter,
        base_dir: Path,
        extra_checks: Sequence[AnswerCheck] = (),
        embedders: Sequence[Embedder] = (),
    ) -> Optimisation | None:
        """None when none of the sections asks for anything."""
        tiers, routing = sections.tiers, sections.routing
        compression, output_caps = sections.compression, sections.output_caps
        compression_on = compression is not None and compression.active
        if routing is None and not compression_on and output_caps is None:
            return None
        table: TierTable | None = None
        rules = RuleSet(())
        learned: LearnedSettings | None = None
        checks: list[AnswerCheck] = []
        if routing is not None:
            table = _tier_table(tiers, facts_of, prices)
            index = {name: i for i, name in enumerate(tiers)}
            rules = RuleSet([compile_rule(spec, i, index[spec.tier]) for i, spec in enumerate(routing.rules)])
            if routing.learned is not None:
                path = Path(routing.learned.path)
                try:
                    router = load_learned_router(path if path.is_absolute() else base_dir / path)
                    embedder = embedder_for(router.embedder, embedders)
                except ConfigError as error:
                    raise ConfigError(f"routing.learned.path: {error}") from None
                thresholds = tuple(routing.learned.thresholds or (router.threshold,))
                if embedder.dim != router.dim:
                    raise ConfigError(
                        f"routing.learned.path: the router was trained on {router.dim} dimensions, "
                        f"{embedder.name} gives {embedder.dim}"
                    )
                learned = LearnedSettings(router, embedder, thresholds)
            escalation = routing.escalation
            if escalation.enabled:
                for name in escalation.checks:
                    check = BUILTIN_CHECKS[name]
                    if name == "refusal" and escalation.refusal_patterns:
                        check = refusal_check(escalation.refusal_patterns)
                    checks.append(check)
                checks += [_import_check(reference) for reference in escalation.custom]
                checks += list(extra_checks)
        return cls(
            prices=prices,
            counter=counter,
            facts_of=facts_of,
            tiers=table,
            rules=rules,
            learned=learned,
            checks=checks,
        )

    @classmethod
    def for_gateway(
        cls,
        config: GatewayConfig,
        routes: Routes,
        prices: PriceBook,
        counter: TokenCounter,
        base_dir: Path,
        embedders: Sequence[Embedder] = (),
    ) -> Optimisation | None:
        """From the gateway config; a model's capabilities, window and price come from its route."""
        facts: dict[str, ModelFacts] = {}
        for name in routes.names():
            route = routes.get(name)
            assert route is not None
            capabilities = route.capabilities  # as configured, and what the provider's format can take:
            if route.upstream.wire == "openai":
                capabilities |= {WIDE_TEMPERATURE}
            facts[name] = ModelFacts(
                name, route.priced_as, route.upstream.provider_id, capabilities, route.context_window
            )

        def facts_of(name: str) -> ModelFacts:
            found = facts.get(name)
            return found if found is not None else ModelFacts(name, name, None, ALL_CAPABILITIES, None)

        return cls.build(
            config,
            facts_of=facts_of,
            prices=prices,
            counter=counter,
            base_dir=base_dir,
            embedders=embedders,
        )

    @classmethod
    def in_process(
        cls,
        spec: OptimisationSpec,
        prices: PriceBook,
        counter: TokenCounter,
        *,
        checks: Sequence[AnswerCheck] = (),
        base_dir: Path | None = None,
        embedders: Sequence[Embedder] = (),
    ) -> Optimisation | None:
        """For the in-process client: every model is served by the wrapped SDK's own endpoint, and
        what routing knows of a model (window, price, provider) comes from the price catalogue.
        ``embedders``: say, the semantic cache's, so a learned router trained on it shares it."""
        known: dict[str, ModelFacts] = {}

        def facts_of(name: str) -> ModelFacts:
            facts = known.get(name)
            if facts is None:
                try:
                    quote = prices.quote(name)
                    provider, window = quote.provider, quote.context_window
                except UnknownModelError:
                    provider, window = None, None
                facts = known[name] = ModelFacts(name, name, provider, ALL_CAPABILITIES, window)
            return facts

        return cls.build(
            spec,
            facts_of=facts_of,
            prices=prices,
            counter=counter,
            base_dir=base_dir if base_dir is not None else Path.cwd(),
            extra_checks=checks,
            embedders=embedders,
        )

    @classmethod
    def check(cls, config: GatewayConfig, prices: PriceBook, base_dir: Path) -> str | None:
        """What ``thrifty config check`` cannot see in the schema: the learned router's file (and
        its embedder), the custom checks' imports. None when all of it loads."""
        names = {model.name: model.priced_as for model in config.models}

        def facts_of(name: str) -> ModelFacts:
            return ModelFacts(name, names.get(name, name), None, ALL_CAPABILITIES, None)

        try:
            cls.build(
                config,
                facts_of=facts_of,
                prices=prices,
                counter=TokenCounter(),
                base_dir=base_dir,
            )
        except ConfigError as error:
            return str(error)
        return None


def _tier_table(tiers: dict[str, list[str]], facts_of: Callable[[str], ModelFacts], prices: PriceBook) -> TierTable:
    options = []
    for tier, (_, names) in enumerate(tiers.items()):
        for name in names:
            facts = facts_of(name)
            inp: Decimal | None = None
            out: Decimal | None = None
            try:
                rates = prices.quote(facts.priced_as, provider=facts.provider_id).rates
                inp, out = rates.input.per_mtok, rates.output.per_mtok
            except UnknownModelError:
                pass
            options.append(ModelOption(name, tier, facts.capabilities, facts.context_window, inp, out))
    return TierTable(list(tiers), options)


def compile_rule(spec: RuleSpec, position: int, tier: int) -> Rule:
    return Rule.build(
        spec.name or f"#{position + 1}",
        tier,
        keywords=spec.keywords,
        regex=spec.regex,
        min_prompt_tokens=spec.min_prompt_tokens,
        max_prompt_tokens=spec.max_prompt_tokens,
        min_context_tokens=spec.min_context_tokens,
        max_context_tokens=spec.max_context_tokens,
        has_code=spec.has_code,
        features=spec.features,
        tags=spec.tags,
        capabilities=spec.capabilities,
    )
