"""The ``cache:`` section of the gateway config: exact and semantic response caches, provider
prompt caching."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CacheSpec", "ExactCacheSpec", "NamespaceSpec", "PromptCacheSpec", "SemanticCacheSpec"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Scope = Literal["team", "key", "user", "shared"]


class NamespaceSpec(_Strict):
    ttl_s: Annotated[int, Field(gt=0)] | None = None
    threshold: Annotated[float, Field(gt=0, le=1)] | None = None
    """The semantic similarity threshold for this namespace."""


class ExactCacheSpec(_Strict):
    enabled: bool = True
    scope: Scope = "team"
    """Who sees an entry: the same team (or key, when there is no team), key, user, or everyone
    (``shared``). Never wider than this."""
    ttl_s: Annotated[int, Field(gt=0)] = 3600
    sampled: Literal["bypass", "cache"] = "bypass"
    """Requests sampled with temperature > 0 (the providers' default when none is set) would get a
    different answer each time: ``bypass`` leaves them uncached unless the request sends
    ``x-thrifty-cache: force``."""
    max_entry_bytes: Annotated[int, Field(gt=0)] = 1_000_000
    """Larger responses are not cached."""
    memory_entries: Annotated[int, Field(ge=0)] = 10_000
    """Entries kept in process memory in front of SQLite (not used with Redis)."""
    namespaces: dict[str, NamespaceSpec] = Field(default_factory=dict)


class SemanticCacheSpec(_Strict):
    enabled: bool = False
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.9
    ttl_s: Annotated[int, Field(gt=0)] = 86_400
    guard: bool = True
    verifier: bool = True


class PromptCacheSpec(_Strict):
    anthropic_breakpoints: bool = True
    """Mark the end of a long stable prefix (tools, system, earlier turns) with ``cache_control``
    in requests to Anthropic models that carry none, so that the provider caches it."""


class CacheSpec(_Strict):
    exact: ExactCacheSpec = Field(default_factory=ExactCacheSpec)
    semantic: SemanticCacheSpec = Field(default_factory=SemanticCacheSpec)
    prompt: PromptCacheSpec = Field(default_factory=PromptCacheSpec)
