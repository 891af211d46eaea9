"""``thrifty cache``: manage the response cache."""

from __future__ import annotations

from pathlib import Path

import click

from thrifty.cli.common import CliError, default_ledger_url, emit_json, json_option
from thrifty.core.redact import redact_url

__all__ = ["cache"]

_NAMESPACES = "team:NAME, key:ID, team:NAME/user:U, key:ID/user:U, user:NAME, shared, anonymous"


def _check_namespace(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A namespace the gateway can make (core.cache_key.namespace_for); anything else would clear
    nothing and say "cleared 0", as if the cache had been empty."""
    if value is None or value in ("shared", "anonymous"):
        return value
    kind, _, name = value.partition(":")
    if kind in ("team", "key", "user") and name.strip() and not name.startswith("/"):
        return value
    raise CliError(f"--namespace: {value!r} is not a cache namespace; use one of {_NAMESPACES}")


@click.group()
def cache() -> None:
    """Manage the response cache (exact and semantic)."""


@cache.command("clear")
@click.option("--namespace", callback=_check_namespace, help=f"Only this namespace ({_NAMESPACES}).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The gateway config: clears the cache it uses (Redis, or its SQLite file).",
)
@click.option("--ledger", "ledger_url", help="Without --config: the SQLite ledger file the cache shares.")
@json_option
def clear(namespace: str | None, config_path: Path | None, ledger_url: str | None, as_json: bool) -> None:
    """Drop cached responses, exact and semantic. Running gateways stop serving them within a second."""
    from thrifty.config.cache import CacheSpec
    from thrifty.stores.cache import LocalCache, RedisCache, ResponseCache

    store: ResponseCache
    cache_spec = CacheSpec()
    if config_path is not None:
        from thrifty.config.files import ConfigError
        from thrifty.config.gateway import load_gateway_config

        try:
            config = load_gateway_config(config_path)
        except ConfigError as error:
            raise CliError(str(error)) from None
        storage, cache_spec = config.storage, config.cache
        path = storage.local_cache_path()
        store = RedisCache(storage.redis) if storage.redis else LocalCache(path, 0)
        where = redact_url(storage.redis) if storage.redis else str(path)
    else:
        url = ledger_url or default_ledger_url()
        if not url.startswith("sqlite:///"):
            raise CliError("--ledger must be a sqlite:/// URL here; for Redis or PostgreSQL setups give --config")
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise CliError(f"no cache at {path}: nothing has been stored there yet")
        store = LocalCache(path, 0)
        where = str(path)
    try:
        dropped = store.clear(namespace)
    except Exception as error:
        raise CliError(f"cannot clear the cache at {where}: {type(error).__name__}: {error}".splitlines()[0]) from None
    semantic_where = "its PostgreSQL database" if cache_spec.semantic.index != "local" else str(path)
    try:
        from thrifty.semantic.service import clear_semantic

        entries, vectors = clear_semantic(cache_spec, path, namespace)
    except Exception as error:
        message = f"cannot clear the semantic index at {semantic_where}: {type(error).__name__}: {error}"
        raise CliError(message.splitlines()[0]) from None
    dropped += entries
    if as_json:
        emit_json({"cleared": dropped, "semantic_vectors": vectors, "namespace": namespace, "where": where})
    else:
        of = f" of {namespace}" if namespace else ""
        click.echo(f"cleared {dropped} entries{of} from {where} ({vectors} semantic index vectors)")
