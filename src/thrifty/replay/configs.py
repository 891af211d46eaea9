"""The configs a replay runs: a file checked as ``thrifty config check`` checks it (a provider's
key variable may be unset: no provider is called), a config made up for a sample file that comes
with none, and the what-ifs (``--model-map``, ``--price-override``) applied to a config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from thrifty.config.files import ConfigError, load_document
from thrifty.config.gateway import GatewayConfig, ModelSpec, PricesSpec
from thrifty.core.pricing import Catalogue, PriceBook
from thrifty.errors import ThriftyError

__all__ = [
    "ReplayConfigError",
    "load_replay_config",
    "parse_model_map",
    "plain_config",
    "price_book_of",
    "with_what_ifs",
]

_PLAIN_BASE = "https://replay.invalid"
"""The providers of a made-up config: never called (the replay transport answers)."""


class ReplayConfigError(ThriftyError, ValueError):
    """A config a replay cannot run: each problem as ``thrifty config check`` says it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_replay_config(path: Path, catalogue: Catalogue | None = None) -> GatewayConfig:
    from thrifty.gateway.checks import check_gateway_file

    if not path.is_file():
        raise ReplayConfigError([f"{path}: no such file"])
    checked, problems = check_gateway_file(path, catalogue=catalogue)
    wanted = [p for p in problems if not ("api_key_env" in p.where and "is not set" in p.message)]
    if checked.kind != "gateway":
        wanted.append(checked.problems[0] if checked.problems else _problem(f"a {checked.kind}, not a gateway config"))
    if wanted:
        raise ReplayConfigError([problem.line(str(path)) for problem in wanted])
    if checked.config is None:
        raise ReplayConfigError([f"{path}: not a gateway config"])
    _refuse_provider_embedder(checked.config, str(path))
    return checked.config


def _problem(message: str) -> Any:
    from thrifty.config.problems import Problem

    return Problem("", message)


def _refuse_provider_embedder(config: GatewayConfig, source: str) -> None:
    semantic = config.cache.semantic
    if semantic.enabled and semantic.embedder.kind != "local":
        raise ReplayConfigError(
            [
                f"{source}: cache.semantic.embedder: a replay embeds with the local model only (a provider "
                "embedder would be called); replay with --no-semantic, or the local embedder"
            ]
        )


def plain_config(models: Iterable[str]) -> GatewayConfig:
    """For a sample without a config: each model served as itself, at the catalogue's prices,
    nothing cached, routed or compressed."""
    names = sorted(set(models))
    return GatewayConfig.model_validate(
        {
            "providers": {
                "openai": {"kind": "openai", "base_url": f"{_PLAIN_BASE}/v1"},
                "anthropic": {"kind": "anthropic", "base_url": _PLAIN_BASE},
            },
            "models": [{"name": name, "provider": _provider_for(name)} for name in names]
            or [{"name": "gpt-4o-mini", "provider": "openai"}],
            "cache": {"exact": {"enabled": False}},
        }
    )


def _provider_for(model: str) -> str:
    return "anthropic" if model.startswith("claude") else "openai"


def parse_model_map(values: Iterable[str]) -> dict[str, str]:
    """``FROM=TO`` pairs (each a public model name)."""
    mapping: dict[str, str] = {}
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(f"--model-map {value!r}: expected FROM=TO (e.g. gpt-4o=gpt-4.1-mini)")
        mapping[source.strip()] = target.strip()
    return mapping


def with_what_ifs(
    config: GatewayConfig,
    base_dir: Path,
    *,
    model_map: Mapping[str, str] | None = None,
    price_override: Path | None = None,
) -> GatewayConfig:
    """``config`` serving every model ``model_map`` maps to (a model it lacks is served by the
    provider of the model mapped to it, or by an Anthropic provider for a Claude model), priced
    with ``price_override``'s entries on top of its own."""
    changes: dict[str, Any] = {}
    if model_map:
        models = list(config.models)
        names = {model.name for model in models}
        for source, target in model_map.items():
            if target in names:
                continue
            provider = _target_provider(config, source, target)
            models.append(ModelSpec(name=target, provider=provider))
            names.add(target)
        changes["models"] = models
    if price_override is not None:
        changes["prices"] = _merged_prices(config, base_dir, price_override)
    if not changes:
        return config
    return config.model_copy(update=changes)  # each part validated on its own, references kept


def _target_provider(config: GatewayConfig, source: str, target: str) -> str:
    kinds = {name: spec.kind for name, spec in config.providers.items()}
    if target.startswith("claude"):
        for name, kind in kinds.items():
            if kind == "anthropic":
                return name
    else:
        spec = config.model(source)
        if spec is not None and kinds.get(spec.provider) != "anthropic":
            return spec.provider
        for name, kind in kinds.items():
            if kind != "anthropic":
                return name
    raise ReplayConfigError([f"--model-map {source}={target}: the config has no provider that can serve {target}"])


def _merged_prices(config: GatewayConfig, base_dir: Path, path: Path) -> PricesSpec:
    try:
        extra = load_document(path) or {}
    except ConfigError as error:
        raise ReplayConfigError([str(error)]) from None
    if not isinstance(extra, dict):
        raise ReplayConfigError([f"{path}: a price file must be a mapping (models:, default_price:)"])
    own: dict[str, Any] = {"models": []}
    if isinstance(config.prices, str):
        where = Path(config.prices)
        own = dict(load_document(where if where.is_absolute() else base_dir / where) or own)
    elif isinstance(config.prices, PricesSpec):
        own = config.prices.model_dump(exclude_none=True)
    document = {
        "models": [*(own.get("models") or []), *(extra.get("models") or [])],
        "default_price": extra.get("default_price", own.get("default_price")),
    }
    try:
        from thrifty.config.prices import price_book_from_document

        price_book_from_document({k: v for k, v in document.items() if v is not None}, str(path))
        return PricesSpec.model_validate({k: v for k, v in document.items() if v is not None})
    except (ConfigError, ValueError) as error:
        raise ReplayConfigError([str(error)]) from None


def price_book_of(config: GatewayConfig, base_dir: Path, catalogue: Catalogue | None = None) -> PriceBook:
    from thrifty.gateway.runtime import build_price_book

    try:
        return build_price_book(config, base_dir, catalogue)
    except ConfigError as error:
        raise ReplayConfigError([str(error)]) from None
