"""One pipeline, built by one function for every face: the gateway and the in-process client get
the same steps, in the same order, from the same validated config sections and defaults.

Each step makes itself from the config (``Step.from_config(sections, services)``, in the step's own
module) or stays out when its section asks for nothing. The lists below are the order, outermost
first; adding a step is adding its module and one entry here."""

from __future__ import annotations

from collections.abc import Sequence

from thrifty.config.gateway import RetrySpec
from thrifty.pipeline.budgets.step import BudgetStep
from thrifty.pipeline.call import Step
from thrifty.pipeline.services import Sections, Services, StepFactory
from thrifty.pipeline.steps.cache import ExactCacheStep
from thrifty.pipeline.steps.compression import CompressionStep, OutputCapStep
from thrifty.pipeline.steps.dispatch import RetryPolicy
from thrifty.pipeline.steps.embeddings import EmbeddingsCacheStep
from thrifty.pipeline.steps.ratelimit import RateLimitStep
from thrifty.pipeline.steps.record import RecordStep
from thrifty.pipeline.steps.routing import RouterStep

__all__ = ["CHAT_STEPS", "EMBEDDING_STEPS", "Sections", "Services", "build", "retry_policy"]


class _SemanticCache:
    """The semantic cache step, imported only when it is on (numpy and onnxruntime)."""

    @staticmethod
    def from_config(sections: Sections, services: Services) -> Step | None:
        if services.semantic is None:
            return None
        from thrifty.pipeline.steps.semantic import SemanticCacheStep

        return SemanticCacheStep.from_config(sections, services)


CHAT_STEPS: tuple[StepFactory, ...] = (
    RecordStep,  # prices and records what comes back, every row of it
    ExactCacheStep,
    _SemanticCache,  # on the exact cache's misses
    CompressionStep,  # inside the caches: a cached answer needs neither
    OutputCapStep,
    RouterStep,
    BudgetStep,  # innermost: reserve for the model that will be sent, then rate limits
    RateLimitStep,  # a call refused by its budget takes no rate
)
"""Chat (OpenAI chat completions and Responses, Anthropic messages): see the README for each."""

EMBEDDING_STEPS: tuple[StepFactory, ...] = (RecordStep, EmbeddingsCacheStep, BudgetStep, RateLimitStep)
"""Embeddings: no routing nor fallbacks (another model's vectors live in another space)."""


def build(factories: Sequence[StepFactory], sections: Sections, services: Services) -> list[Step]:
    """The steps ``factories`` make from ``sections``, in order, leaving out those turned off."""
    steps = []
    for factory in factories:
        step = factory.from_config(sections, services)
        if step is not None:
            steps.append(step)
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
