"""The ``cache:`` section of the gateway config: exact and semantic response caches, provider
prompt caching."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CacheSpec",
    "EmbedderSpec",
    "ExactCacheSpec",
    "NamespaceSpec",
    "PromptCacheSpec",
    "SemanticCacheSpec",
    "load_cache_spec",
]


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


class EmbedderSpec(_Strict):
    """What turns a question into a vector: the local int8 all-MiniLM-L6-v2 (default, offline), or
    an OpenAI-compatible ``/embeddings`` endpoint."""

    kind: Literal["local", "provider"] = "local"
    base_url: str | None = None
    """provider: the URL before ``/embeddings`` (``https://api.openai.com/v1``)."""
    model: str | None = None
    dim: Annotated[int, Field(gt=0)] | None = None
    api_key_env: str | None = None
    """provider: the environment variable holding its key (the key itself is never in the config)."""
    timeout_s: Annotated[float, Field(gt=0)] = 5.0

    @model_validator(mode="after")
    def _provider_complete(self) -> EmbedderSpec:
        if self.kind == "provider" and not (self.base_url and self.model and self.dim):
            raise ValueError("a provider embedder needs base_url, model and dim")
        return self


class SemanticCacheSpec(_Strict):
    enabled: bool = False
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.97
    """The cosine similarity a stored question needs (``namespaces`` overrides it per tenant).
    The default is the shipped operating point for precision 0.95 with the guard and verifier on
    (held-out Quora pairs: precision 0.958, recall 0.051): a wrong hit serves someone another
    question's answer, so the default favours precision. ``thrifty cache calibrate`` picks one
    for your own pairs and target."""
    ttl_s: Annotated[int, Field(gt=0)] = 86_400
    guard: bool = True
    """Refuse near misses: negation, other numbers, dates, units, names, opposite actions."""
    verifier: bool = True
    """A second check of each candidate above the threshold (the shipped pair classifier)."""
    index: str = "local"
    """``local``: in process (exact, then HNSW), saved beside the SQLite cache; or a
    ``postgresql://`` URL: pgvector, shared by every gateway (entries are kept there too)."""
    embedder: EmbedderSpec = Field(default_factory=EmbedderSpec)
    namespaces: dict[str, NamespaceSpec] = Field(default_factory=dict)
    """Per tenant (``team:red``, ``key:ID``, ``shared``...): threshold and TTL."""
    candidates: Annotated[int, Field(gt=0, le=32)] = 4
    max_question_chars: Annotated[int, Field(gt=0)] = 1000
    """Longer questions bypass the semantic cache: the model reads only its first 256 tokens, so
    two long questions that differ at the end would look the same to it."""
    lookup_timeout_s: Annotated[float, Field(gt=0)] = 1.0
    """A lookup slower than this (a stalled backend) is a miss."""

    @field_validator("index")
    @classmethod
    def _index_kind(cls, value: str) -> str:
        if value != "local" and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be local or a postgresql:// URL")
        return value

    def threshold_for(self, namespace: str, exact: ExactCacheSpec | None = None) -> float:
        for source in (self.namespaces, exact.namespaces if exact is not None else {}):
            override = source.get(namespace)
            if override is not None and override.threshold is not None:
                return override.threshold
        return self.threshold

    def ttl_for(self, namespace: str) -> int:
        override = self.namespaces.get(namespace)
        return override.ttl_s if override is not None and override.ttl_s is not None else self.ttl_s


class PromptCacheSpec(_Strict):
    anthropic_breakpoints: bool = True
    """Mark the end of a long stable prefix (tools, system, earlier turns) with ``cache_control``
    in requests to Anthropic models that carry none, so that the provider caches it."""


class CacheSpec(_Strict):
    exact: ExactCacheSpec = Field(default_factory=ExactCacheSpec)
    semantic: SemanticCacheSpec = Field(default_factory=SemanticCacheSpec)
    prompt: PromptCacheSpec = Field(default_factory=PromptCacheSpec)


def load_cache_spec(source: str | Path | dict[str, Any] | CacheSpec) -> CacheSpec:
    """The in-process client's caches: a mapping like the gateway config's ``cache:`` section, or a
    YAML/JSON file holding one (a gateway config file will do: its ``cache:`` section is used)."""
    from pydantic import ValidationError

    from thrifty.config.files import ConfigError, describe_validation_error, load_document

    if isinstance(source, CacheSpec):
        return source
    document = source if isinstance(source, dict) else load_document(source)
    where = "cache" if isinstance(source, dict) else str(source)
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: expected a mapping (exact:, semantic:, prompt:)")
    if not isinstance(source, dict) and "cache" in document:
        document = document["cache"] or {}
    try:
        return CacheSpec.model_validate(document)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, where)) from None
