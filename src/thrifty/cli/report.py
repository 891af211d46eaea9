"""``thrifty report``: totals from the ledger, by model, feature, user, key, tag, day...; latency
and time-to-first-token percentiles per group; cache hit rates, savings, budget utilisation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from thrifty.cli.budgets import budget_report, print_budget_report
from thrifty.cli.common import (
    CliError,
    config_option,
    demo_ledger_url,
    emit_json,
    json_option,
    parse_when,
    require_existing,
    resolve_ledger,
    say_store,
    store_error,
    usd,
)
from thrifty.core.ledger import LOWER_BOUND_STATUSES
from thrifty.core.pricing import format_usd
from thrifty.stores.ledger import GROUPINGS, Latencies, LedgerStore, Percentiles, Totals, open_ledger

__all__ = ["ledger_option", "report", "report_document"]

_DEFAULT_GROUPS = ("model", "feature", "user", "day")


def ledger_option(func: Any) -> Any:
    return click.option(
        "--ledger",
        "ledger_url",
        default=None,
        help="Ledger URL (sqlite:///FILE or postgresql://...). Env: THRIFTY_LEDGER_URL; "
        "default: sqlite:///.thrifty/thrifty.db",
    )(func)


def _open_existing(url: str) -> LedgerStore:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path != ":memory:" and not Path(path).is_file():
            raise CliError(f"no ledger at {path}: nothing has been recorded there yet")
    try:
        return open_ledger(url)
    except ValueError as error:
        raise CliError(str(error)) from None
    except Exception as error:  # an unreachable database: say which, briefly
        raise store_error("the ledger", url, error) from None


@click.command()
@config_option
@ledger_option
@click.option(
    "--by",
    "groups",
    default=",".join(_DEFAULT_GROUPS),
    show_default=True,
    help=f"Comma-separated groupings: {', '.join(GROUPINGS)}.",
)
@click.option("--since", "since_text", metavar="DATE", help="From this date or time (UTC), inclusive.")
@click.option("--until", "until_text", metavar="DATE", help="Up to this date or time (UTC), exclusive.")
@click.option(
    "--budgets",
    "budgets_url",
    default=None,
    envvar="THRIFTY_BUDGETS_URL",
    help="The budget store to report utilisation from (default: budgets.db beside a SQLite ledger).",
)
@click.option(
    "--demo",
    "demo_store",
    is_flag=True,
    help="Report on the demos' own store (.thrifty/demo.db: thrifty demo, serve --demo).",
)
@click.option(
    "--compare",
    type=click.Choice(["previous-week", "previous-period"]),
    help="The weekly review: each KPI of the period (--since/--until, default the last 7 days) against "
    "the period of the same length before it, with the top movers.",
)
@click.option("--baseline", metavar="FROM..TO", help="The review against these dates instead (UTC).")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --compare or --baseline: also write the review as one self-contained HTML page.",
)
@json_option
def report(
    ledger_url: str | None,
    groups: str,
    since_text: str | None,
    until_text: str | None,
    as_json: bool,
    budgets_url: str | None = None,
    config_path: Path | None = None,
    demo_store: bool = False,
    compare: str | None = None,
    baseline: str | None = None,
    html_file: Path | None = None,
) -> None:
    """Totals from the ledger: calls, tokens and cost by model, feature, user and day; with
    --compare or --baseline, the review of a period against another."""
    wanted = [g.strip() for g in groups.split(",") if g.strip()]
    unknown = [g for g in wanted if g not in GROUPINGS]
    if unknown or not wanted:
        raise CliError(f"--by: unknown grouping {', '.join(unknown) or '(none)'}; choose from {', '.join(GROUPINGS)}")
    since = parse_when(since_text, "--since")
    until = parse_when(until_text, "--until")
    if since and until and since >= until:
        raise CliError("--since must be before --until")
    if demo_store:
        given = click.get_current_context().get_parameter_source("config_path")
        if ledger_url or given is click.core.ParameterSource.COMMANDLINE:  # THRIFTY_CONFIG in the env: --demo wins
            raise CliError("--demo reads the demos' own store; drop --config/--ledger (or drop --demo)")
        url, source = demo_ledger_url(), "--demo"
    else:
        url, source = resolve_ledger(config_path, ledger_url)
    require_existing(url, source)
    say_store(url, source, quiet=as_json)
    if compare is not None or baseline is not None:
        _review(url, compare, baseline, since, until, as_json, html_file)
        return
    if html_file is not None:
        raise CliError("--html writes the review: give --compare or --baseline too")
    gathered = _gather(url, wanted, since, until, budgets_url)
    if as_json:
        emit_json(_document(url, since, until, gathered))
        return
    overall = gathered.overall
    click.echo(
        f"{overall.calls:,} calls, {usd(overall.cost_usd)} "
        f"({overall.input_tokens:,} input tokens, {overall.output_tokens:,} output tokens)"
    )
    if overall.unpriced_calls:
        click.echo(f"  {overall.unpriced_calls:,} calls have no known price and are not in the total")
    _print_lower_bounds(gathered.partial)
    _print_savings(overall, gathered.hits, gathered.savings)
    _print_bypasses(gathered.bypasses)
    for group, rows in gathered.sections.items():
        latencies = gathered.latencies[group]
        click.echo(f"\nby {group}:")
        click.echo(
            f"  {'':<32}{'calls':>9}{'input':>14}{'cached':>14}{'output':>12}{'cost':>16}"
            f"  {'latency ms p50/p95/p99':>24}  {'ttft ms p50/p95/p99':>24}"
        )
        for t in sorted(rows, key=lambda r: r.cost_usd, reverse=group != "day"):
            unpriced = f"  (+{t.unpriced_calls} unpriced)" if t.unpriced_calls else ""
            found = latencies.get(t.key)
            click.echo(
                f"  {t.key or '(none)':<32}{t.calls:>9,}{t.input_tokens:>14,}{t.cache_read_tokens:>14,}"
                f"{t.output_tokens:>12,}{usd(t.cost_usd):>16}"
                f"  {_ms(found.latency_ms if found else None):>24}  {_ms(found.ttft_ms if found else None):>24}"
                f"{unpriced}"
            )
    print_budget_report(gathered.budget_rows)


@dataclass(frozen=True, slots=True)
class _Gathered:
    sections: dict[str, list[Totals]]
    latencies: dict[str, dict[str | None, Latencies]]
    overall: Totals
    hits: dict[str | None, int]
    partial: list[Totals]
    savings: dict[str, Decimal]
    budget_rows: list[dict[str, Any]] | None
    bypasses: dict[str, int]


def _gather(
    url: str, wanted: list[str], since: datetime | None, until: datetime | None, budgets_url: str | None
) -> _Gathered:
    store = _open_existing(url)
    try:
        sections = {g: store.totals(g, since, until) for g in wanted}  # type: ignore[arg-type]
        latencies = {g: {x.key: x for x in store.latencies(g, since, until)} for g in wanted}  # type: ignore[arg-type]
        caching = store.totals("cache", since, until)
        by_status = store.totals("status", since, until)
        savings = store.savings(since, until)
    finally:
        store.close()
    bypasses = _bypasses(url, since, until) if any(t.key == "bypass" for t in caching) else {}
    return _Gathered(
        sections=sections,
        latencies=latencies,
        overall=_overall(next(iter(sections.values()))),
        hits={t.key: t.calls for t in caching},
        partial=[t for t in by_status if t.key in LOWER_BOUND_STATUSES],
        savings=savings,
        budget_rows=budget_report(url, budgets_url),
        bypasses=bypasses,
    )


def _document(url: str, since: datetime | None, until: datetime | None, gathered: _Gathered) -> dict[str, Any]:
    def row(group: str, t: Totals) -> dict[str, Any]:
        found = gathered.latencies[group].get(t.key)
        return {
            **_totals_json(t),
            "latency_ms": _percentiles_json(found.latency_ms if found else None),
            "ttft_ms": _percentiles_json(found.ttft_ms if found else None),
        }

    return {
        "ledger": url,
        "since": since,
        "until": until,
        "totals": _totals_json(gathered.overall),
        "cache": gathered.hits,
        "cache_bypass": gathered.bypasses,
        "lower_bounds": _lower_bounds_json(gathered.partial),
        "savings_usd": {k: format_usd(v) for k, v in gathered.savings.items()},
        "by": {g: [row(g, t) for t in rows] for g, rows in gathered.sections.items()},
        "budgets": gathered.budget_rows,
    }


def report_document(url: str, groups: tuple[str, ...] = ("model", "feature", "user")) -> dict[str, Any]:
    """What ``thrifty report --json`` prints for this ledger (all of it, these groupings)."""
    return _document(url, None, None, _gather(url, list(groups), None, None, None))


def _percentiles_json(found: Percentiles | None) -> dict[str, float] | None:
    return None if found is None else {"p50": found.p50, "p95": found.p95, "p99": found.p99}


def _ms(found: Percentiles | None) -> str:
    """``812/2,310/3,950`` (whole milliseconds), or ``-`` for none recorded."""
    if found is None:
        return "-"
    return "/".join(f"{round(v):,}" for v in (found.p50, found.p95, found.p99))


def _print_savings(overall: Totals, hits: dict[str | None, int], savings: dict[str, Decimal]) -> None:
    # The share of the calls the cache decided on: thrifty's own calls (classifier, summaries,
    # embeddings: "internal") and rows with no cache decision are not in it.
    served = {k: hits.get(k, 0) for k in ("hit", "semantic", "miss", "bypass")}
    decided = sum(served.values())
    if decided:
        share = (served["hit"] + served["semantic"]) / decided * 100
        parts = ", ".join(f"{n:,} {k}" for k, n in served.items() if n)
        click.echo(f"  cache: {share:.1f}% answered from the cache ({parts})")
    if savings:
        total = sum(savings.values(), Decimal(0))
        spent_without = overall.cost_usd + total
        detail = ", ".join(f"{k} {usd(v)}" for k, v in sorted(savings.items(), key=lambda kv: -kv[1]))
        percent = f" ({total / spent_without * 100:.1f}% of {usd(spent_without)})" if spent_without > 0 else ""
        click.echo(f"  saved {usd(total)}{percent}: {detail}")


def _review(
    url: str,
    compare: str | None,
    baseline: str | None,
    since: datetime | None,
    until: datetime | None,
    as_json: bool,
    html_file: Path | None,
) -> None:
    from thrifty.cli.review import periods_for, render_text, review, utc_now, write_html

    periods = periods_for(compare, baseline, since, until, utc_now())
    store = _open_existing(url)
    try:
        document = review(store, periods)
    finally:
        store.close()
    if html_file is not None:
        write_html(html_file, document)
    if as_json:
        emit_json(document)
    else:
        click.echo(render_text(document))


def _bypasses(url: str, since: datetime | None, until: datetime | None) -> dict[str, int]:
    """Calls that bypassed the caches, by why (``details.cache_bypass``; rows written before
    thrifty recorded it are ``unrecorded``)."""
    from thrifty.stores.ledger.details import count_detail

    try:
        counted = count_detail(url, "cache_bypass", cache_status="bypass", since=since, until=until)
    except Exception as error:
        raise store_error("the ledger", url, error) from None
    out: dict[str, int] = {}
    for value, n in counted.items():
        key = (
            "unrecorded" if value is None else "temperature_above_0_or_unset" if value.startswith("sampled") else value
        )
        out[key] = out.get(key, 0) + n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _print_bypasses(bypasses: dict[str, int]) -> None:
    from thrifty.pipeline.steps.cache import BYPASS_CAUSES

    if not bypasses:
        return
    parts = ", ".join(f"{n:,} {BYPASS_CAUSES.get(k, k.replace('_', ' '))}" for k, n in bypasses.items())
    click.echo(f"  bypassed the caches: {parts}")
    if any(k != "off" for k in bypasses):
        click.echo(
            "    sampled calls are never cached, since each answer is drawn anew; to cache them send "
            "temperature: 0, or set cache.exact.sampled: cache, or send x-thrifty-cache: force"
        )


_PARTIAL_NAMES = {"interrupted": "interrupted", "timeout": "timed out", "incomplete": "cut short"}


def _print_lower_bounds(partial: list[Totals]) -> None:
    """Rows whose cost is known only in part: calls in flight when their process stopped, and
    attempts the provider may have billed without answering in full."""
    if not partial:
        return
    cost = sum((t.cost_usd for t in partial), start=Decimal(0))
    parts = ", ".join(f"{t.calls:,} {_PARTIAL_NAMES.get(t.key or '', t.key)}" for t in partial)
    click.echo(
        f"  lower bounds: {parts}: at least {usd(cost)} of the total "
        "(their input at the model's price; what was generated is not known)"
    )


def _lower_bounds_json(partial: list[Totals]) -> dict[str, Any]:
    return {
        "calls": sum(t.calls for t in partial),
        "cost_usd": format_usd(sum((t.cost_usd for t in partial), start=Decimal(0))),
        "by_status": {t.key: {"calls": t.calls, "cost_usd": format_usd(t.cost_usd)} for t in partial},
    }


def _overall(rows: list[Totals]) -> Totals:
    counterfactuals = [t.counterfactual_usd for t in rows if t.counterfactual_usd is not None]
    return Totals(
        key=None,
        calls=sum(t.calls for t in rows),
        errors=sum(t.errors for t in rows),
        input_tokens=sum(t.input_tokens for t in rows),
        cache_read_tokens=sum(t.cache_read_tokens for t in rows),
        cache_write_tokens=sum(t.cache_write_tokens for t in rows),
        output_tokens=sum(t.output_tokens for t in rows),
        cost_usd=sum((t.cost_usd for t in rows), start=Decimal(0)),
        unpriced_calls=sum(t.unpriced_calls for t in rows),
        counterfactual_usd=sum(counterfactuals, start=Decimal(0)) if counterfactuals else None,
    )


def _totals_json(t: Totals) -> dict[str, Any]:
    return {
        "key": t.key,
        "calls": t.calls,
        "errors": t.errors,
        "input_tokens": t.input_tokens,
        "cache_read_tokens": t.cache_read_tokens,
        "cache_write_tokens": t.cache_write_tokens,
        "output_tokens": t.output_tokens,
        "cost_usd": format_usd(t.cost_usd),
        "unpriced_calls": t.unpriced_calls,
        "counterfactual_usd": None if t.counterfactual_usd is None else format_usd(t.counterfactual_usd),
    }
