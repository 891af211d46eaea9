"""What every step is built from: the validated config sections (``Sections``) and the shared
parts a face opens and closes (``Services``). Each step's ``from_config(sections, services)`` reads
its own section here and makes itself, or returns None when its section asks for nothing; the
list of steps, in order, is in ``pipeline.build``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from thrifty.config.cache import CacheSpec

if TYPE_CHECKING:  # the types only: the steps import this module, and these import the steps
    from thrifty.config.gateway import GatewayConfig
    from thrifty.config.routing import CompressionSpec, OptimisationSpec, OutputCapsSpec, RoutingSpec
    from thrifty.core.pricing import PriceBook
    from thrifty.core.tokens.counter import TokenCounter
    from thrifty.pipeline.budgets.estimate import RoutesOf
    from thrifty.pipeline.call import Step
    from thrifty.pipeline.limits import Limits
    from thrifty.pipeline.optimisation import Optimisation
    from thrifty.pipeline.steps.record import RecordSink
    from thrifty.semantic.service import SemanticService
    from thrifty.stores.cache import ResponseCache

__all__ = ["Sections", "Services", "StepFactory"]


@dataclass(frozen=True, slots=True)
class Sections:
    """The config sections the steps read, validated: the gateway fills it from its config file,
    the in-process client from its arguments, with the same defaults. (Budgets and rate limits are
    read once, into ``Services.limits``: their stores are shared by both pipelines.)"""

    cache: CacheSpec = field(default_factory=CacheSpec)
    routing: RoutingSpec | None = None
    compression: CompressionSpec | None = None
    output_caps: OutputCapsSpec | None = None

    @classmethod
    def of_gateway(cls, config: GatewayConfig) -> Sections:
        return cls(config.cache, config.routing, config.compression, config.output_caps)

    @classmethod
    def of_client(cls, cache: CacheSpec | None, optimise: OptimisationSpec | None) -> Sections:
        if optimise is None:
            return cls(cache or CacheSpec())
        return cls(cache or CacheSpec(), optimise.routing, optimise.compression, optimise.output_caps)


@dataclass(frozen=True, slots=True)
class Services:
    """What the steps run on: a face opens these (and closes them); the steps only use them.
    ``routes_of`` gives the routes a model may be served by, in order (fallbacks after the first)."""

    prices: PriceBook
    writer: RecordSink
    counter: TokenCounter
    routes_of: RoutesOf
    response_cache: ResponseCache | None = None
    semantic: SemanticService | None = None
    optimisation: Optimisation | None = None
    limits: Limits | None = None


class StepFactory(Protocol):
    """A step class (or a function standing for one): ``from_config`` makes the step from its
    section, or returns None when the section turns it off."""

    def from_config(self, sections: Sections, services: Services, /) -> Step | None: ...
