"""``thrifty budgets``: set, show and delete budgets in the store every gateway process reads
(SQLite or Redis), and the budget section of ``thrifty report``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click

from thrifty.cli.common import (
    COUNT,
    CliError,
    default_ledger_url,
    emit_json,
    json_option,
    needs_value,
    parse_decimal,
    say_store,
    store_error,
)
from thrifty.core.redact import redact_url

__all__ = ["budget_report", "budgets", "print_budget_report"]

T = TypeVar("T")


def _run(work: Callable[[Any], Coroutine[Any, Any, T]], store: Any) -> T:
    from thrifty.stores.budgets import StoreUnavailable

    async def go() -> T:
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except StoreUnavailable as error:
        raise CliError(str(error)) from None


class _Target:
    """Where budgets live, and what a config adds (plans' budgets, the default time zone)."""

    def __init__(
        self, config_path: Path | None, store_url: str | None, prefix: str | None, source: str = "--store"
    ) -> None:
        from thrifty.config.budgets import BudgetsSpec, budget_store_url

        self.source = source
        self.timezone = "UTC"
        self.plan_budgets: list[Any] = []
        self.models: list[str] | None = None
        if config_path is not None:
            from thrifty.config.files import ConfigError
            from thrifty.config.gateway import load_gateway_config

            try:
                config = load_gateway_config(config_path)
            except ConfigError as error:
                raise CliError(str(error)) from None
            spec = config.budgets
            url = store_url or budget_store_url(spec, config.storage.redis, config.storage.ledger)
            if not store_url:
                self.source = f"the config {config_path}"
            self.prefix = prefix or spec.key_prefix
            self.timezone = spec.timezone
            self.models = [m.name for m in config.models]
            if config.plans is not None:
                for name, plan in config.plans.tiers.items():
                    self.plan_budgets += [
                        b.to_budget("user", None, spec.timezone, f"plan:{name}") for b in plan.budgets
                    ]
        else:
            url = store_url or budget_store_url(BudgetsSpec(), None, default_ledger_url())
            if not store_url:
                self.source = "the default, beside the ledger"
            self.prefix = prefix or BudgetsSpec().key_prefix
        self.url = url

    @classmethod
    def for_command(cls, config_path: Path | None, store_url: str | None, prefix: str | None) -> _Target:
        """The target of a ``budgets`` command, knowing where its store URL came from."""
        from click.core import ParameterSource

        ctx = click.get_current_context()
        given = ctx.get_parameter_source("store_url") == ParameterSource.ENVIRONMENT
        return cls(config_path, store_url, prefix, "THRIFTY_BUDGETS_URL" if given else "--store")

    def require_existing(self) -> None:
        """A read-only command never creates a store: a SQLite file that is not there is an error."""
        if self.url.startswith("sqlite:///") and not self.url.endswith(":memory:"):
            path = Path(self.url.removeprefix("sqlite:///"))
            if not path.is_file():
                raise CliError(f"no budget store at {path} (from {self.source}): no budget has been set there")

    def open(self) -> Any:
        from thrifty.stores.budgets import open_budget_store

        try:
            return open_budget_store(self.url, prefix=self.prefix)
        except ValueError as error:
            raise CliError(str(error)) from None
        except Exception as error:
            raise store_error("the budget store", self.url, error) from None


def _where(func: Any) -> Any:
    func = click.option(
        "--prefix", default=None, envvar="THRIFTY_BUDGETS_PREFIX", help="Redis key prefix (default: the config's)."
    )(func)
    func = click.option(
        "--store",
        "store_url",
        default=None,
        envvar="THRIFTY_BUDGETS_URL",
        help="sqlite:///FILE or redis://HOST:PORT/DB. Env: THRIFTY_BUDGETS_URL; default: the config's, "
        "else .thrifty/budgets.db.",
    )(func)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="THRIFTY_CONFIG",
        help="The gateway config: its budget store, time zone and plans. Env: THRIFTY_CONFIG.",
    )(func)


@click.group()
def budgets() -> None:
    """Budgets: spend or token limits per key, user, team, feature, tag or globally, over a day,
    week, month or rolling window. Every gateway process sees changes within seconds."""


@budgets.command("set")
@click.option("--user", callback=needs_value, help="For this user.")
@click.option("--team", callback=needs_value, help="For this team.")
@click.option("--feature", callback=needs_value, help="For this feature.")
@click.option("--key", "key_id", callback=needs_value, help="For this virtual key (its id, key_...).")
@click.option("--tag", callback=needs_value, help="For calls carrying this tag.")
@click.option("--global", "is_global", is_flag=True, help="For every call.")
@click.option("--each", is_flag=True, help="With --user/--team/... and no value: each of them separately.")
@click.option("--usd", callback=needs_value, help="The limit in US dollars.")
@click.option("--tokens", type=COUNT, help="The limit in tokens (input plus output).")
@click.option("--window", type=click.Choice(["day", "week", "month", "rolling"]), default="day", show_default=True)
@click.option("--seconds", type=click.IntRange(min=60), help="The length of a rolling window.")
@click.option(
    "--timezone",
    callback=needs_value,
    help="Where a day, week or month begins (IANA name; default: the config's, UTC).",
)
@click.option(
    "--alert-at", "alert_at", multiple=True, help="Alert at this fraction of the limit (repeat; default 0.8)."
)
@click.option(
    "--downgrade-to",
    callback=needs_value,
    help="At the limit, send calls to this cheaper model instead of refusing them.",
)
@_where
@json_option
def set_budget(
    user: str | None,
    team: str | None,
    feature: str | None,
    key_id: str | None,
    tag: str | None,
    is_global: bool,
    each: bool,
    usd: str | None,
    tokens: int | None,
    window: str,
    seconds: int | None,
    timezone: str | None,
    alert_at: tuple[str, ...],
    downgrade_to: str | None,
    config_path: Path | None,
    store_url: str | None,
    prefix: str | None,
    as_json: bool,
) -> None:
    """Create or replace a budget, e.g. ``thrifty budgets set --user alice --usd 5 --window day``."""
    from pydantic import ValidationError

    from thrifty.config.budgets import BudgetSpec
    from thrifty.config.files import describe_validation_error
    from thrifty.core.budgets import budget_to_doc

    named = (("user", user), ("team", team), ("feature", feature), ("key", key_id), ("tag", tag))
    scopes: list[tuple[str, str | None]] = [(s, v) for s, v in named if v]
    if is_global:
        scopes.append(("global", None))
    if len(scopes) != 1:
        raise CliError("name exactly one of --user, --team, --feature, --key, --tag and --global")
    if (usd is None) == (tokens is None):
        raise CliError("give exactly one of --usd and --tokens")
    scope, value = scopes[0]
    if each:
        value = None
    target = _Target(config_path, store_url, prefix)
    document: dict[str, Any] = {
        "scope": scope,
        "value": value,
        "window": window,
        "usd": str(parse_decimal(usd, "--usd")) if usd is not None else None,
        "tokens": tokens,
        "seconds": seconds,
        "timezone": timezone or target.timezone,
        "alert_at": list(alert_at) or ["0.8"],
        "on_exceed": "downgrade" if downgrade_to else "refuse",
        "downgrade_to": downgrade_to,
    }
    if window == "rolling":
        document.pop("timezone")
    try:
        budget = BudgetSpec.model_validate(document).budget(target.timezone, source="admin")
    except ValidationError as error:
        raise CliError(describe_validation_error(error, "budget").replace("\n", "; ")) from None
    except ValueError as error:
        raise CliError(str(error)) from None
    if downgrade_to and target.models is not None and downgrade_to not in target.models:
        raise CliError(f"--downgrade-to: the config serves no model named {downgrade_to!r}")
    doc = budget_to_doc(budget)

    async def put(store: Any) -> None:
        await store.put_definition(budget.id, doc)

    _run(put, target.open())
    if as_json:
        emit_json(doc)
        return
    click.echo(
        f"set {budget.id}: {budget.describe_limit()} for {budget.who(value or 'each')} (store {redact_url(target.url)})"
    )


@budgets.command("delete")
@click.argument("budget_id")
@_where
@json_option
def delete_budget(
    budget_id: str, config_path: Path | None, store_url: str | None, prefix: str | None, as_json: bool
) -> None:
    """Delete a budget by its id (as ``thrifty budgets show`` lists it)."""
    target = _Target.for_command(config_path, store_url, prefix)
    target.require_existing()  # deleting from a store that is not there would create it

    async def delete(store: Any) -> bool:
        result: bool = await store.delete_definition(budget_id)
        return result

    if not _run(delete, target.open()):
        raise CliError(f"no budget {budget_id!r} in {redact_url(target.url)}")
    if as_json:
        emit_json({"deleted": budget_id, "store": redact_url(target.url)})
        return
    click.echo(f"deleted {budget_id}")


@budgets.command("show")
@_where
@json_option
def show(config_path: Path | None, store_url: str | None, prefix: str | None, as_json: bool) -> None:
    """Each budget's spend, reservations in flight, what remains and when it resets."""
    target = _Target.for_command(config_path, store_url, prefix)
    target.require_existing()
    say_store(target.url, target.source, quiet=as_json)
    rows = _run(lambda store: _status(store, target.plan_budgets), target.open())
    if as_json:
        emit_json({"store": redact_url(target.url), "budgets": rows})
        return
    if not rows:
        click.echo(f"no budgets in {redact_url(target.url)}")
        return
    _print_rows(rows)


async def _status(store: Any, extra: list[Any]) -> list[dict[str, Any]]:
    from thrifty.core.budgets import BudgetError, budget_from_doc
    from thrifty.pipeline.budgets.status import budget_status

    found = []
    for doc in await store.definitions():
        try:
            found.append(budget_from_doc(doc))
        except BudgetError:
            continue
    return [row.as_json() for row in await budget_status(store, [*found, *extra])]


def _print_rows(rows: list[dict[str, Any]]) -> None:
    click.echo(
        f"  {'budget':<34}{'subject':<16}{'spent':>14}{'reserved':>12}{'remaining':>14}{'limit':>14}{'used':>7}  resets"
    )
    from thrifty.cli.common import usd

    def money(unit: str, value: Any) -> str:
        return f"{int(value):,}" if unit == "tokens" else usd(Decimal(str(value)))

    for row in rows:
        unit = row["unit"]

        resets = row["resets_at"]
        when = datetime.fromisoformat(resets).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if resets else "-"
        click.echo(
            f"  {row['id'][:33]:<34}{str(row['subject'])[:15]:<16}{money(unit, row['spent']):>14}"
            f"{money(unit, row['reserved']):>12}{money(unit, row['remaining']):>14}{money(unit, row['limit']):>14}"
            f"{row['utilisation'] * 100:>6.1f}%  {when}"
        )


def budget_report(ledger_url: str, budgets_url: str | None) -> list[dict[str, Any]] | None:
    """The budgets' status for ``thrifty report``: from ``budgets_url``, else the SQLite store
    beside a SQLite ledger when there is one; None when there is no store to read."""
    from thrifty.config.budgets import BudgetsSpec, budget_store_url

    url = budgets_url
    if url is None:
        candidate = budget_store_url(BudgetsSpec(), None, ledger_url)
        if not candidate.startswith("sqlite:///") or not Path(candidate.removeprefix("sqlite:///")).is_file():
            return None
        url = candidate
    target = _Target(None, url, os.environ.get("THRIFTY_BUDGETS_PREFIX"))
    return _run(lambda store: _status(store, []), target.open())


def print_budget_report(rows: list[dict[str, Any]] | None) -> None:
    if not rows:
        return
    click.echo("\nbudgets (current windows):")
    _print_rows(rows)
