"""``thrifty report --compare previous-week`` (or ``--baseline DATE..DATE``): the weekly review.
Each KPI of a period against a baseline period with its change, and the top movers -- the
features, users, models and teams whose cost changed most -- as text, JSON or one self-contained
HTML page.

The KPIs are the ledger's own sums over each period's rows: spend, calls, cost per call, cache hit
rate (exact and semantic, of the calls the caches decided on), tokens per call in and out (a
rising input average is a prompt that grew), savings, errors, unpriced calls, active users and
spend per active user per day, and the model mix."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from thrifty.cli.common import CliError, parse_when
from thrifty.core.pricing import format_usd
from thrifty.stores.ledger import LedgerStore, Totals

__all__ = ["Periods", "periods_for", "render_html", "render_text", "review", "utc_now", "write_html"]

_MOVER_GROUPS = ("feature", "user", "model", "team")
_TOP = 5


@dataclass(frozen=True, slots=True)
class Periods:
    since: datetime
    until: datetime
    baseline_since: datetime
    baseline_until: datetime

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400

    @property
    def baseline_days(self) -> float:
        return (self.baseline_until - self.baseline_since).total_seconds() / 86400


def periods_for(
    compare: str | None, baseline: str | None, since: datetime | None, until: datetime | None, now: datetime
) -> Periods:
    """The period (``--since``/``--until``, by default the 7 days to now) and its baseline: the
    period of the same length just before it (``previous-week``, ``previous-period``) or the
    ``--baseline FROM..TO`` given."""
    if compare is not None and baseline is not None:
        raise CliError("--compare and --baseline: choose one")
    end = until or now
    start = since or end - timedelta(days=7)
    if start >= end:
        raise CliError("--since must be before --until")
    if baseline is not None:
        first, sep, last = baseline.partition("..")
        if not sep or not first or not last:
            raise CliError(f"--baseline: {baseline!r} is not FROM..TO (e.g. 2026-11-01..2026-11-08)")
        base_start, base_end = parse_when(first, "--baseline"), parse_when(last, "--baseline")
        assert base_start is not None
        assert base_end is not None
        if base_start >= base_end:
            raise CliError("--baseline: FROM must be before TO")
        return Periods(start, end, base_start, base_end)
    if compare == "previous-week" and since is None and until is None:
        return Periods(start, end, start - timedelta(days=7), start)
    if compare in ("previous-week", "previous-period"):
        length = end - start
        return Periods(start, end, start - length, start)
    raise CliError(f"--compare: {compare!r}; choose previous-week or previous-period")


def _kpis(store: LedgerStore, since: datetime, until: datetime, days: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(KPIs, per-group totals) of one period."""
    models = store.totals("model", since, until)
    cache = {t.key: t.calls for t in store.totals("cache", since, until)}
    users = store.totals("user", since, until)
    savings = store.savings(since, until)
    calls = sum(t.calls for t in models)
    spend = sum((t.cost_usd for t in models), Decimal(0))
    priced = calls - sum(t.unpriced_calls for t in models)
    decided = sum(cache.get(k, 0) for k in ("hit", "semantic", "miss", "bypass"))
    active = sum(1 for t in users if t.key is not None and t.calls)
    kpis: dict[str, Any] = {
        "spend_usd": spend,
        "calls": calls,
        "cost_per_call_usd": spend / priced if priced else None,
        "exact_hit_rate": cache.get("hit", 0) / decided if decided else None,
        "semantic_hit_rate": cache.get("semantic", 0) / decided if decided else None,
        "input_tokens_per_call": sum(t.input_tokens for t in models) / calls if calls else None,
        "output_tokens_per_call": sum(t.output_tokens for t in models) / calls if calls else None,
        "saved_usd": sum(savings.values(), Decimal(0)),
        "error_rate": sum(t.errors for t in models) / calls if calls else None,
        "unpriced_calls": calls - priced,
        "active_users": active,
        "spend_per_active_user_per_day_usd": spend / active / Decimal(str(days)) if active and days > 0 else None,
    }
    groups = {g: {t.key: t for t in store.totals(g, since, until)} for g in _MOVER_GROUPS}  # type: ignore[arg-type]
    groups["model_mix"] = {t.key: t for t in models}
    return kpis, groups


def review(store: LedgerStore, periods: Periods) -> dict[str, Any]:
    """The comparison, as JSON-ready values (money as exact decimal strings)."""
    now, now_groups = _kpis(store, periods.since, periods.until, periods.days)
    then, then_groups = _kpis(store, periods.baseline_since, periods.baseline_until, periods.baseline_days)
    rows = []
    for name, value in now.items():
        before = then[name]
        rows.append({"kpi": name, "value": _json(value), "baseline": _json(before), **_change(value, before)})
    movers = {group: _movers(now_groups[group], then_groups[group]) for group in _MOVER_GROUPS}
    mix = _mix(now_groups["model_mix"], then_groups["model_mix"])
    return {
        "period": {"since": periods.since.isoformat(), "until": periods.until.isoformat()},
        "baseline": {"since": periods.baseline_since.isoformat(), "until": periods.baseline_until.isoformat()},
        "kpis": rows,
        "model_mix": mix,
        "top_movers": movers,
    }


def _change(value: Any, before: Any) -> dict[str, Any]:
    if value is None or before is None:
        return {"change": None, "change_pct": None}
    delta = Decimal(str(value)) - Decimal(str(before))
    pct = float(delta / Decimal(str(before)) * 100) if before else None
    return {"change": _json(delta if isinstance(value, Decimal) else float(delta)), "change_pct": _round(pct)}


def _movers(now: dict[str | None, Totals], then: dict[str | None, Totals]) -> list[dict[str, Any]]:
    keys = set(now) | set(then)
    zero = Decimal(0)
    deltas = [
        (key, now[key].cost_usd if key in now else zero, then[key].cost_usd if key in then else zero) for key in keys
    ]
    deltas.sort(key=lambda item: (-abs(item[1] - item[2]), str(item[0])))
    return [
        {
            "key": key,
            "cost_usd": format_usd(after),
            "baseline_cost_usd": format_usd(before),
            "change_usd": format_usd(after - before),
            "change_pct": _round(float((after - before) / before * 100)) if before else None,
        }
        for key, after, before in deltas[:_TOP]
        if after != before
    ]


def _mix(now: dict[str | None, Totals], then: dict[str | None, Totals]) -> list[dict[str, Any]]:
    total_now = sum(t.calls for t in now.values()) or 1
    total_then = sum(t.calls for t in then.values()) or 1
    keys = sorted(set(now) | set(then), key=lambda k: -(now[k].calls if k in now else 0))
    return [
        {
            "model": key,
            "share": _round((now[key].calls if key in now else 0) / total_now, 4),
            "baseline_share": _round((then[key].calls if key in then else 0) / total_then, 4),
        }
        for key in keys
    ]


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_usd(value)
    if isinstance(value, float):
        return _round(value, 6)
    return value


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# -- rendering -------------------------------------------------------------------------------------

_LABELS = {
    "spend_usd": "spend",
    "calls": "calls",
    "cost_per_call_usd": "cost per call",
    "exact_hit_rate": "exact-cache hit rate",
    "semantic_hit_rate": "semantic-cache hit rate",
    "input_tokens_per_call": "input tokens per call",
    "output_tokens_per_call": "output tokens per call",
    "saved_usd": "saved",
    "error_rate": "error rate",
    "unpriced_calls": "unpriced calls",
    "active_users": "active users",
    "spend_per_active_user_per_day_usd": "spend per active user per day",
}


def _shown(kpi: str, value: Any) -> str:
    if value is None:
        return "-"
    if kpi.endswith("_usd"):
        return f"${value}"
    if kpi.endswith("_rate"):
        return f"{float(value) * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}%"


def render_text(document: dict[str, Any]) -> str:
    period, base = document["period"], document["baseline"]
    lines = [f"{period['since']} .. {period['until']}  against  {base['since']} .. {base['until']}", ""]
    for row in document["kpis"]:
        kpi = row["kpi"]
        lines.append(
            f"  {_LABELS[kpi]:<32}{_shown(kpi, row['value']):>18}{_shown(kpi, row['baseline']):>18}"
            f"{_pct(row['change_pct']):>10}"
        )
    lines.append("\nmodel mix (share of calls):")
    for row in document["model_mix"]:
        lines.append(
            f"  {row['model'] or '(none)':<32}{row['share'] * 100:>17.1f}%{row['baseline_share'] * 100:>17.1f}%"
        )
    for group, movers in document["top_movers"].items():
        if not movers:
            continue
        lines.append(f"\ntop movers by {group} (cost):")
        for row in movers:
            lines.append(
                f"  {row['key'] or '(none)':<32}{'$' + row['cost_usd']:>18}{'$' + row['baseline_cost_usd']:>18}"
                f"  {'$' + row['change_usd']:>14} {_pct(row['change_pct'])}"
            )
    return "\n".join(lines)


def render_html(document: dict[str, Any]) -> str:
    """One page, no external asset: a table of KPIs and one of movers per group."""
    esc = html.escape
    period, base = document["period"], document["baseline"]
    kpi_rows = "".join(
        f"<tr><td>{esc(_LABELS[r['kpi']])}</td><td>{esc(_shown(r['kpi'], r['value']))}</td>"
        f"<td>{esc(_shown(r['kpi'], r['baseline']))}</td>"
        f"<td class='{_sign(r['change_pct'])}'>{esc(_pct(r['change_pct']))}</td></tr>"
        for r in document["kpis"]
    )
    sections = []
    for group, movers in document["top_movers"].items():
        if not movers:
            continue
        body = "".join(
            f"<tr><td>{esc(str(m['key'] or '(none)'))}</td><td>${esc(m['cost_usd'])}</td>"
            f"<td>${esc(m['baseline_cost_usd'])}</td><td class='{_sign(m['change_pct'])}'>${esc(m['change_usd'])} "
            f"{esc(_pct(m['change_pct']))}</td></tr>"
            for m in movers
        )
        sections.append(
            f"<h2>Top movers by {esc(group)}</h2><table><tr><th>{esc(group)}</th><th>cost</th>"
            f"<th>baseline</th><th>change</th></tr>{body}</table>"
        )
    style = (
        "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child"
        "{text-align:left}.up{color:#b00}.down{color:#070}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>thrifty weekly review</title><style>{style}</style>"
        f"</head><body><h1>thrifty review</h1><p>{esc(period['since'])} .. {esc(period['until'])} against "
        f"{esc(base['since'])} .. {esc(base['until'])}</p><table><tr><th>KPI</th><th>this period</th>"
        f"<th>baseline</th><th>change</th></tr>{kpi_rows}</table>{''.join(sections)}</body></html>\n"
    )


def _sign(pct: float | None) -> str:
    return "" if pct is None or pct == 0 else "up" if pct > 0 else "down"


def write_html(path: Path, document: dict[str, Any]) -> None:
    try:
        path.write_text(render_html(document), encoding="utf-8")
    except OSError as error:
        raise CliError(f"--html {path}: cannot be written: {error.strerror}") from None


def utc_now() -> datetime:
    return datetime.now(UTC)
