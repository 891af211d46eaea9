"""``thrifty reconcile``: the ledger against a provider's own cost export, by day and model, so
thrifty's figures can be trusted -- or corrected -- and any drift is seen the day it starts."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from thrifty.cli.common import CliError, config_option, emit_json, json_option, parse_when, resolve_ledger, store_error
from thrifty.core.pricing import format_usd

__all__ = ["DriftTooHigh", "reconcile"]


class DriftTooHigh(CliError):
    """The period's drift is above --max-drift: exit status 1 (the table above says where)."""

    exit_code = 1


@click.command()
@click.option("--provider", type=click.Choice(["openai", "anthropic"]), required=True, help="Whose bill --costs is.")
@click.option(
    "--costs",
    "costs_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The provider's cost export: OpenAI's /v1/organization/costs pages (group_by=line_item), Anthropic's "
    "cost report (group_by[]=description), as JSON or JSON Lines; or a CSV with date, model and cost_usd columns.",
)
@config_option
@click.option("--ledger", "ledger_url", default=None, help="Ledger URL (after --config). Env: THRIFTY_LEDGER_URL.")
@click.option("--since", "since_text", metavar="DATE", help="From this UTC day (default: the export's first).")
@click.option("--until", "until_text", metavar="DATE", help="Up to this UTC day, exclusive (default: after its last).")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="A day and model whose drift is within this many percent (or one cent) is reported as agreeing.",
)
@click.option(
    "--max-drift",
    type=click.FloatRange(min=0),
    default=None,
    help="Exit 1 when the whole period's drift is above this many percent (for a scheduled check).",
)
@json_option
def reconcile(
    provider: str,
    costs_file: Path,
    config_path: Path | None,
    ledger_url: str | None,
    since_text: str | None,
    until_text: str | None,
    tolerance: float,
    max_drift: float | None,
    as_json: bool,
) -> None:
    """Compare the ledger's cost per day and model with a provider's cost export."""
    from thrifty.core.reconcile import ExportError, compare, parse_export
    from thrifty.stores.ledger import open_ledger
    from thrifty.stores.ledger.daily import DailyCosts

    try:
        bill = parse_export(costs_file.read_text(encoding="utf-8"), provider, str(costs_file))
    except (ExportError, UnicodeDecodeError) as error:
        raise CliError(str(error)) from None
    except OSError as error:
        raise CliError(f"{costs_file}: cannot be read: {error.strerror}") from None
    if not bill:
        raise CliError(
            f"{costs_file}: no cost by model in it (OpenAI: group_by=line_item; Anthropic: group_by[]=description)"
        )
    days = sorted({day for day, _ in bill})
    since = parse_when(since_text, "--since") or _day(days[0])
    until = parse_when(until_text, "--until") or _day(days[-1]) + timedelta(days=1)
    if since >= until:
        raise CliError("--since must be before --until")
    url, _ = resolve_ledger(config_path, ledger_url)
    names = _provider_names(config_path, provider)
    try:
        open_ledger(url).close()  # migrated, and reachable
        daily = DailyCosts(url)
        try:
            ledger = daily.by_day_and_model(since, until, names)
        finally:
            daily.close()
    except Exception as error:
        raise store_error("the ledger", url, error) from None
    in_range = [day for day in days if since <= _day(day) < until]
    drifts = compare(ledger, bill, in_range)
    total_ledger = sum((d.ledger_usd for d in drifts), Decimal(0))
    total_bill = sum((d.provider_usd for d in drifts), Decimal(0))
    total_pct = float((total_ledger - total_bill) / total_bill * 100) if total_bill else None
    rows = [_row(d, tolerance) for d in drifts]
    if as_json:
        emit_json(
            {
                "provider": provider,
                "since": since.isoformat(),
                "until": until.isoformat(),
                "ledger_usd": format_usd(total_ledger),
                "provider_usd": format_usd(total_bill),
                "drift_usd": format_usd(total_ledger - total_bill),
                "drift_pct": None if total_pct is None else round(total_pct, 3),
                "days": rows,
            }
        )
    else:
        _print(rows, total_ledger, total_bill, total_pct, provider)
    if max_drift is not None and total_pct is not None and abs(total_pct) > max_drift:
        raise DriftTooHigh(
            f"the ledger and {provider}'s bill differ by {total_pct:+.2f}%, more than --max-drift {max_drift}%"
        )


def _day(day: str) -> datetime:
    parsed = parse_when(day, "day")
    assert parsed is not None
    return parsed


def _provider_names(config_path: Path | None, provider: str) -> set[str] | None:
    """The ledger's provider names for ``provider``: the config's providers of that kind (Azure
    counts as OpenAI), else the name itself."""
    if config_path is None:
        return {provider}
    from thrifty.config.files import ConfigError
    from thrifty.config.gateway import load_gateway_config

    try:
        config = load_gateway_config(config_path)
    except ConfigError as error:
        raise CliError(str(error)) from None
    kinds = {"openai": ("openai", "azure"), "anthropic": ("anthropic",)}[provider]
    return {name for name, spec in config.providers.items() if spec.kind in kinds}


def _row(drift: Any, tolerance: float) -> dict[str, Any]:
    pct = drift.drift_pct
    agrees = abs(drift.drift_usd) <= Decimal("0.01") or (pct is not None and abs(pct) <= tolerance)
    return {
        "day": drift.day,
        "model": drift.model,
        "ledger_usd": format_usd(drift.ledger_usd),
        "provider_usd": format_usd(drift.provider_usd),
        "drift_usd": format_usd(drift.drift_usd),
        "drift_pct": None if pct is None else round(pct, 3),
        "agrees": agrees,
    }


def _print(rows: list[dict[str, Any]], ledger: Decimal, bill: Decimal, pct: float | None, provider: str) -> None:
    click.echo(f"{'day':<12}{'model':<34}{'ledger':>14}{provider:>14}{'drift':>14}{'':>9}")
    for row in rows:
        mark = "" if row["agrees"] else "  <-"
        shown = "" if row["drift_pct"] is None else f"{row['drift_pct']:+.2f}%"
        click.echo(
            f"{row['day']:<12}{row['model']:<34}{'$' + row['ledger_usd']:>14}{'$' + row['provider_usd']:>14}"
            f"{'$' + row['drift_usd']:>14}{shown:>9}{mark}"
        )
    off = sum(1 for row in rows if not row["agrees"])
    total = "" if pct is None else f" ({pct:+.2f}%)"
    click.echo(
        f"total: ledger ${format_usd(ledger)}, {provider} ${format_usd(bill)}, "
        f"drift ${format_usd(ledger - bill)}{total}; {off} of {len(rows)} day-model rows outside the tolerance"
    )
