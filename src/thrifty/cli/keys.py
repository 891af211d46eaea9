"""``thrifty keys``: virtual keys that authenticate clients and carry attribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import click

from thrifty.cli.common import (
    CliError,
    config_option,
    emit_json,
    json_option,
    needs_value,
    require_existing,
    resolve_ledger,
    say_store,
    store_error,
)
from thrifty.stores.keys import KeyStore

__all__ = ["keys"]

F = TypeVar("F", bound=Any)


def _store(
    config_path: Path | None, ledger_url: str | None, *, read_only: bool = False, quiet: bool = False
) -> KeyStore:
    from thrifty.stores.keys import open_keys

    url, source = resolve_ledger(config_path, ledger_url)
    if read_only:
        require_existing(url, source)
    say_store(url, source, quiet=quiet)
    try:
        return open_keys(url)
    except ValueError as error:
        raise CliError(str(error)) from None
    except Exception as error:
        raise store_error("the key store", url, error) from None


_ledger_option = click.option(
    "--ledger",
    "ledger_url",
    default=None,
    help="The database holding keys (default: THRIFTY_LEDGER_URL or the embedded store).",
)


def _ledger(func: F) -> F:
    """``--config`` (or THRIFTY_CONFIG) first, then ``--ledger``: the gateway's own key store."""
    return config_option(_ledger_option(func))


@click.group()
def keys() -> None:
    """Create, list and revoke virtual keys. Once any key exists, the gateway requires one."""


@keys.command("create")
@click.option("--user", callback=needs_value, help="Attribute calls made with this key to this user.")
@click.option("--team", callback=needs_value, help="... to this team.")
@click.option("--feature", callback=needs_value, help="... to this feature.")
@click.option("--note", callback=needs_value, help="A reminder of what the key is for.")
@_ledger
@json_option
def create(
    user: str | None,
    team: str | None,
    feature: str | None,
    note: str | None,
    config_path: Path | None,
    ledger_url: str | None,
    as_json: bool,
) -> None:
    """Create a key. The secret is shown once and stored only as a hash."""
    for name, value in (("--user", user), ("--team", team), ("--feature", feature)):
        if value is not None and (not value.strip() or len(value) > 256 or not value.isprintable()):
            raise CliError(f"{name}: 1 to 256 printable characters")
    store = _store(config_path, ledger_url, quiet=as_json)
    try:
        info, secret = store.create(user=user, team=team, feature=feature, note=note)
    finally:
        store.close()
    if as_json:
        emit_json({"id": info.id, "secret": secret, "user": user, "team": team, "feature": feature, "note": note})
        return
    click.echo(f"created {info.id} (user={user or '-'}, team={team or '-'}, feature={feature or '-'})")
    click.echo(f"secret (shown once, store it now): {secret}")


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@_ledger
@json_option
def list_keys(include_revoked: bool, config_path: Path | None, ledger_url: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    store = _store(config_path, ledger_url, read_only=True, quiet=as_json)
    try:
        found = store.list(include_revoked=include_revoked)
    finally:
        store.close()
    rows = [
        {
            "id": k.id,
            "prefix": k.prefix,
            "user": k.user,
            "team": k.team,
            "feature": k.feature,
            "note": k.note,
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in found
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no keys (a gateway on this store without auth: keys accepts requests without one)")
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        click.echo(
            f"{row['id']}  {row['prefix']}...  user={row['user'] or '-'} team={row['team'] or '-'} "
            f"feature={row['feature'] or '-'}  {state}"
        )


@keys.command("revoke")
@click.argument("key_id")
@_ledger
@json_option
def revoke(key_id: str, config_path: Path | None, ledger_url: str | None, as_json: bool) -> None:
    """Revoke a key by its id (the gateway stops accepting it within seconds)."""
    store = _store(config_path, ledger_url, read_only=True, quiet=as_json)
    try:
        done = store.revoke(key_id)
    finally:
        store.close()
    if not done:
        raise CliError(f"no active key {key_id!r}")
    if as_json:
        emit_json({"revoked": key_id})
        return
    click.echo(f"revoked {key_id}")
