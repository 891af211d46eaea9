"""The gateway's config file: models, providers, storage, reliability. Secrets never live in it:
a provider names the environment variable that holds its key."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from thrifty.config.alerts import AlertsConfig
from thrifty.config.batch import BatchSpec
from thrifty.config.budgets import AdminSpec, BudgetsSpec, PlansSpec, RateLimitsSpec
from thrifty.config.budgets import check_references as limits_references
from thrifty.config.cache import CacheSpec
from thrifty.config.files import ConfigError, describe_validation_error, load_document
from thrifty.config.prices import DefaultPrice, ModelPrice
from thrifty.config.routing import CompressionSpec, OutputCapsSpec, RoutingSpec
from thrifty.config.routing import reference_problems as routing_references
from thrifty.config.telemetry import MetricsSpec, OtelSpec

__all__ = [
    "GatewayConfig",
    "ModelSpec",
    "ProviderSpec",
    "RetrySpec",
    "ServerSpec",
    "StorageSpec",
    "check_config_file",
    "load_gateway_config",
    "section_references",
]

ProviderKind = Literal["openai", "anthropic", "openai-compatible", "azure"]
Capability = Literal["tools", "vision", "json", "streaming"]
_ALL_CAPABILITIES: tuple[Capability, ...] = ("tools", "vision", "json", "streaming")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSpec(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 4000
    max_body_bytes: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    """Larger request bodies are refused with 413 before they are read in full."""
    max_messages: Annotated[int, Field(ge=1)] = 10_000
    """More messages in one request are refused with 413 before they are parsed or counted."""
    header_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """A request whose headers take longer gets a 408 and the connection is closed (slowloris)."""
    max_header_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    """A request whose request line and headers are larger gets a 431 in the client's error shape
    and the connection is closed (the HTTP parser sets no limit of its own)."""
    body_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    """A request whose body takes longer to arrive gets a 408."""
    max_connections: Annotated[int, Field(ge=1)] = 4096
    """Connections past this get a 429 and are closed at once."""
    max_connections_per_client: Annotated[int, Field(ge=1)] = 1024
    """Connections from one client address past this get a 429 and are closed at once. Behind a
    load balancer every connection comes from its address: raise this to ``max_connections``."""
    offload_bytes: Annotated[int, Field(ge=0)] = 256 * 1024
    """Bodies larger than this are parsed and counted on a worker thread: the event loop goes on
    serving everyone else meanwhile."""


class StorageSpec(_Strict):
    ledger: str = "sqlite:///.thrifty/thrifty.db"
    """sqlite:///FILE or postgresql://... (also holds virtual keys)."""
    journal_dir: str | None = None
    """Where ledger rows wait for the database; default: a ``journal`` folder beside the SQLite
    file, or ``.thrifty/journal`` for PostgreSQL."""
    redis: str | None = None
    """redis://host:port/db: shared state of several gateway processes (exact cache, budget
    counters, rate-limit windows). Without it, that state is per machine (SQLite)."""

    @field_validator("ledger")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return url

    @field_validator("redis")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url

    def local_cache_path(self) -> Path:
        """The SQLite file for the exact cache when there is no Redis: the ledger's own file, or
        ``cache.db`` beside the journal when the ledger is PostgreSQL."""
        if self.ledger.startswith("sqlite:///") and not self.ledger.endswith(":memory:"):
            return Path(self.ledger.removeprefix("sqlite:///"))
        return self.resolved_journal_dir().parent / "cache.db"

    def resolved_journal_dir(self) -> Path:
        if self.journal_dir is not None:
            return Path(self.journal_dir)
        if self.ledger.startswith("sqlite:///") and not self.ledger.endswith(":memory:"):
            return Path(self.ledger.removeprefix("sqlite:///")).parent / "journal"
        return Path(".thrifty/journal")


class RetrySpec(_Strict):
    attempts: Annotated[int, Field(ge=1, le=10)] = 3
    """Attempts per model (the first try included) before its fallbacks are tried."""
    attempt_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    """A non-streaming attempt's whole time; for a stream, the wait for its first byte and between bytes."""
    connect_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    backoff_base_s: Annotated[float, Field(ge=0)] = 0.25
    backoff_max_s: Annotated[float, Field(ge=0)] = 8.0
    retry_after_max_s: Annotated[float, Field(ge=0)] = 30.0
    """A provider asking to wait longer than this sends the request to a fallback instead."""


class ProviderSpec(_Strict):
    kind: ProviderKind
    base_url: str
    """OpenAI: ``https://api.openai.com/v1``; Anthropic: ``https://api.anthropic.com``; Azure:
    ``https://NAME.openai.azure.com`` (deployments are the models' upstream names)."""
    api_key_env: str | None = None
    """The environment variable holding the key. Keys never go in this file."""
    api_version: str | None = None
    """Azure's ``api-version`` query parameter; Anthropic's ``anthropic-version`` header."""
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError("must be the NAME of an environment variable, not a key")
        return name

    @field_validator("headers")
    @classmethod
    def _no_secrets_in_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name.lower() in ("authorization", "x-api-key", "api-key"):
                raise ValueError(f"{name}: credentials come from api_key_env, not from the file")
        return headers

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError("api_key: keys never go in the config file; set api_key_env to a variable's name")
        return data

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelSpec(_Strict):
    name: Annotated[str, Field(min_length=1)]
    """The public name clients send."""
    provider: str
    upstream_model: str | None = None
    """The name sent to the provider (an Azure deployment name for Azure); default: ``name``."""
    price_as: str | None = None
    """The model's name in the price book; default: ``upstream_model``."""
    capabilities: list[Capability] = Field(default_factory=lambda: list(_ALL_CAPABILITIES))
    context_window: Annotated[int, Field(gt=0)] | None = None
    """Default: the catalogue's context window for the model, when it knows one."""
    max_output_tokens: Annotated[int, Field(gt=0)] | None = None
    price: ModelPrice | None = None
    """A price for this model, overriding the catalogue (same fields as a price file entry, no ``model``)."""
    fallbacks: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _price_names_its_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("price"), dict) and "model" not in data["price"]:
            data = dict(data)
            data["price"] = {
                "model": data.get("price_as") or data.get("upstream_model") or data.get("name"),
                **data["price"],
            }
        return data

    @property
    def upstream(self) -> str:
        return self.upstream_model or self.name

    @property
    def priced_as(self) -> str:
        return self.price_as or self.upstream


class PricesSpec(_Strict):
    models: list[ModelPrice] = Field(default_factory=list)
    default_price: DefaultPrice | None = None


AuthMode = Literal["auto", "keys", "none"]


class GatewayConfig(_Strict):
    server: ServerSpec = Field(default_factory=ServerSpec)
    allow_missing_keys: bool = False
    """Start even when a provider's ``api_key_env`` variable is unset (with a loud warning)."""
    auth: AuthMode = "auto"
    """``keys``: every request needs a virtual key. ``auto``: the same once any key was ever
    created (revoked ones count), or whenever the gateway listens beyond loopback; before that, a
    private gateway on loopback needs none. ``none``: keys are never checked (say so loudly)."""
    storage: StorageSpec = Field(default_factory=StorageSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    providers: dict[str, ProviderSpec]
    models: list[ModelSpec]
    prices: str | PricesSpec | None = None
    """A price-override file's path (relative to this file), or the overrides inline."""
    cache: CacheSpec = Field(default_factory=CacheSpec)
    budgets: BudgetsSpec = Field(default_factory=BudgetsSpec)
    plans: PlansSpec | None = None
    rate_limits: RateLimitsSpec = Field(default_factory=RateLimitsSpec)
    admin: AdminSpec = Field(default_factory=AdminSpec)
    tiers: dict[str, list[str]] = Field(default_factory=dict)
    """Models by tier, cheapest tier first, e.g. ``{small: [gpt-4o-mini], large: [gpt-4o]}``."""
    routing: RoutingSpec | None = None
    compression: CompressionSpec | None = None
    output_caps: OutputCapsSpec | None = None
    batch: BatchSpec = Field(default_factory=BatchSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    """Prometheus ``/metrics`` (on by default)."""
    otel: OtelSpec | None = None
    """OpenTelemetry spans over OTLP/HTTP, one per call (off unless an endpoint is given)."""
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    """Spend anomalies and token drift, checked against the ledger (off by default)."""

    @model_validator(mode="after")
    def _references_resolve(self) -> GatewayConfig:
        problems = section_references({name: getattr(self, name) for name in type(self).model_fields})
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def model(self, name: str) -> ModelSpec | None:
        for spec in self.models:
            if spec.name == name:
                return spec
        return None


def parse_gateway_config(document: Any, source: str) -> GatewayConfig:
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the config must be a mapping (providers:, models:, ...)")
    try:
        return GatewayConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, source, GatewayConfig)) from None


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """The config in ``path``, its relative paths (SQLite files, the journal) anchored at the file's
    folder: every command given the file acts on the same databases, from whatever directory."""
    return anchored(parse_gateway_config(load_document(path), str(path)), Path(path).resolve().parent)


def anchored(config: GatewayConfig, base: Path) -> GatewayConfig:
    """``config`` with relative SQLite URLs and directories resolved against ``base``."""
    storage = config.storage
    update: dict[str, Any] = {"ledger": _anchored_sqlite(storage.ledger, base)}
    if storage.journal_dir is not None and not Path(storage.journal_dir).is_absolute():
        update["journal_dir"] = str(base / storage.journal_dir)
    changes: dict[str, Any] = {"storage": storage.model_copy(update=update)}
    if config.budgets.store is not None:
        changes["budgets"] = config.budgets.model_copy(update={"store": _anchored_sqlite(config.budgets.store, base)})
    if config.batch.dir is not None and not Path(config.batch.dir).is_absolute():
        changes["batch"] = config.batch.model_copy(update={"dir": str(base / config.batch.dir)})
    return config.model_copy(update=changes)


def _anchored_sqlite(url: str, base: Path) -> str:
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return url
    path = Path(url.removeprefix("sqlite:///"))
    return url if path.is_absolute() else f"sqlite:///{base / path}"


def section_references(values: Mapping[str, Any]) -> list[str]:
    """Every name one section uses that another does not define (a model's provider or fallbacks,
    a rule's tier, a budget's downgrade model, ...). ``values``: the sections by name, validated;
    a section left out is unknown (it did not validate, or a fragment has none), and the references
    into it go unchecked."""
    models: list[ModelSpec] | None = values.get("models")
    providers: dict[str, ProviderSpec] | None = values.get("providers")
    names = [model.name for model in models] if models is not None else None
    problems = _model_references(models, providers) if models is not None else []
    problems += routing_references(values.get("tiers"), values.get("routing"), values.get("compression"), names)
    if names is not None and "budgets" in values and "plans" in values:
        problems += limits_references(values["budgets"], values["plans"], names)
    return problems


def _model_references(models: list[ModelSpec], providers: dict[str, ProviderSpec] | None) -> list[str]:
    names = {model.name for model in models}
    problems: list[str] = [] if models else ["models: at least one model is needed"]
    seen: set[str] = set()
    for index, model in enumerate(models):
        if model.name in seen:
            problems.append(f"models[{index}].name: {model.name!r} is defined twice")
        seen.add(model.name)
        if providers is not None and model.provider not in providers:
            known = ", ".join(sorted(providers)) or "none"
            problems.append(f"models[{index}].provider: no provider {model.provider!r} (defined: {known})")
        for fallback in model.fallbacks:
            if fallback not in names:
                problems.append(f"models[{index}].fallbacks: no model named {fallback!r}")
            elif fallback == model.name:
                problems.append(f"models[{index}].fallbacks: a model cannot fall back to itself")
    return problems


def missing_keys(config: GatewayConfig) -> list[str]:
    """The providers whose ``api_key_env`` names a variable that is not set."""
    return unset_key_variables(config.providers)


def unset_key_variables(providers: Mapping[str, ProviderSpec]) -> list[str]:
    """``providers.NAME.api_key_env: $VAR is not set`` for each provider whose variable is unset."""
    return [
        f"providers.{name}.api_key_env: ${provider.api_key_env} is not set"
        for name, provider in providers.items()
        if provider.api_key_env and not os.environ.get(provider.api_key_env)
    ]


def check_config_file(path: str | Path) -> list[str]:
    """Every problem in the file, each with its location; empty when the file is good (the schema,
    references between sections, the key variables; see ``thrifty.config.check`` for the rest)."""
    from thrifty.config.check import check_file

    return [problem.line(str(path)) for problem in check_file(path).problems]
