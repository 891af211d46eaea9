"""One pipeline, built by one function for every face: the gateway and the in-process client get
the same steps, in the same order, from the same validated config sections and defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.config.cache import CacheSpec
from thrifty.config.gateway import RetrySpec
from thrifty.core.pricing import PriceBook
from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline.budgets.estimate import RoutesOf
from thrifty.pipeline.call import Step
from thrifty.pipeline.limits import Limits
from thrifty.pipeline.optimisation import Optimisation
from thrifty.pipeline.steps.cache import ExactCacheStep
from thrifty.pipeline.steps.dispatch import RetryPolicy
from thrifty.pipeline.steps.embeddings import EmbeddingsCacheStep
from thrifty.pipeline.steps.record import RecordSink, RecordStep
from thrifty.stores.cache import ResponseCache

if TYPE_CHECKING:
    from thrifty.semantic.service import SemanticService

__all__ = ["Services", "build_embedding_steps", "build_steps", "retry_policy"]


@dataclass(frozen=True, slots=True)
class Services:
    """What the steps are built on: a face opens these (and closes them); the steps only use them."""

    prices: PriceBook
    writer: RecordSink
    counter: TokenCounter
    cache: CacheSpec
    response_cache: ResponseCache | None = None
    semantic: SemanticService | None = None
    optimisation: Optimisation | None = None
    limits: Limits | None = None


def build_steps(services: Services, routes_of: RoutesOf) -> list[Step]:
    """The pipeline, outermost first: record, exact cache, semantic cache, compression and output
    caps, routing, then budgets and rate limits innermost (see the README for what each does)."""
    record = RecordStep(services.prices, services.writer, services.counter)
    steps: list[Step] = [record]
    cache = services.cache
    if cache.exact.enabled and services.response_cache is not None:
        steps.append(ExactCacheStep(services.response_cache, cache.exact, services.prices))
    if services.semantic is not None:  # after the exact cache: runs on its misses
        from thrifty.pipeline.steps.semantic import SemanticCacheStep  # numpy: only when on

        steps.append(SemanticCacheStep(services.semantic, cache, services.prices, counter=services.counter))
    if services.optimisation is not None:
        steps += services.optimisation.outer_steps()  # compression, output caps
        steps += services.optimisation.router_steps()
    if services.limits is not None:
        steps += services.limits.steps(routes_of)  # budgets, then rate limits: innermost
    return steps


def build_embedding_steps(services: Services, routes_of: RoutesOf) -> list[Step]:
    """The embeddings pipeline, outermost first: record, the exact embedding cache, then budgets and
    rate limits. ``routes_of`` gives one model: embeddings never fall back to another model."""
    steps: list[Step] = [RecordStep(services.prices, services.writer, services.counter)]
    exact = services.cache.exact
    if exact.enabled and services.response_cache is not None:
        steps.append(EmbeddingsCacheStep(services.response_cache, exact, services.prices))
    if services.limits is not None:
        steps += services.limits.steps(routes_of)
    return steps


def retry_policy(spec: RetrySpec, attempt_timeout_s: float | None = None) -> RetryPolicy:
    """The dispatcher's policy from the config's ``retry:`` section; ``attempt_timeout_s`` (a
    caller's own timeout, say an SDK client's) replaces the section's attempt timeout."""
    return RetryPolicy(
        attempts=spec.attempts,
        attempt_timeout=attempt_timeout_s if attempt_timeout_s is not None else spec.attempt_timeout_s,
        connect_timeout=min(spec.connect_timeout_s, attempt_timeout_s or spec.connect_timeout_s),
        backoff_base=spec.backoff_base_s,
        backoff_max=spec.backoff_max_s,
        retry_after_max=spec.retry_after_max_s,
    )
