"""``thrifty report --compare`` / ``--baseline``: the weekly review over a seeded ledger, its KPIs
equal to sums computed here from the seeded rows, the top movers, JSON money as exact strings,
a self-contained HTML page, and bad options refused with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing import format_usd
from thrifty.core.pricing.rates import Cost
from thrifty.core.usage import Usage
from thrifty.stores.ledger import open_ledger

START = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday: the period is the week from here
BASE = START - timedelta(days=7)


def seeded(tmp_path: Path) -> tuple[str, list[LedgerRecord]]:
    rows: list[LedgerRecord] = []
    for week, at in (("base", BASE), ("now", START)):
        for i in range(40):
            grown = week == "now"
            feature = "summarise" if i % 2 == 0 else "chat"
            input_tokens = (1500 if grown and feature == "summarise" else 500) + i
            rows.append(
                LedgerRecord(
                    requested_model="gpt-4o-mini" if i % 4 else "gpt-4o",
                    served_model="gpt-4o-mini" if i % 4 else "gpt-4o",
                    ts=at + timedelta(hours=i * 3),
                    request_id=f"{week}-{i}",
                    user=f"u{i % 5}",
                    team="red",
                    feature=feature,
                    usage=Usage(input_tokens=input_tokens, output_tokens=100),
                    cost=Cost(uncached_input=Decimal(input_tokens) * Decimal("0.00000015"), output=Decimal("0.00006")),
                    cache_status="hit" if i % 10 == 0 else "miss",
                )
            )
        if week == "now":
            rows.append(
                LedgerRecord(
                    requested_model="gpt-4o", ts=at + timedelta(hours=1), request_id="new", feature="search",
                    user="u9", cost=Cost(output=Decimal("0.5")), cache_status="miss",
                )
            )  # fmt: skip
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = open_ledger(url)
    try:
        store.insert_rows([r.to_values() for r in rows])
    finally:
        store.close()
    return url, rows


def run(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cli = [sys.executable, "-m", "thrifty.cli.main", "report", "--ledger", url, *extra]
    return subprocess.run(cli, check=False, capture_output=True, text=True)


def spend(rows: list[LedgerRecord], since: datetime, until: datetime) -> Decimal:
    return sum((r.cost.total for r in rows if since <= r.ts < until and r.cost is not None), Decimal(0))


def test_the_review_compares_each_kpi_and_names_the_movers(tmp_path: Path) -> None:
    url, rows = seeded(tmp_path)
    until = START + timedelta(days=7)
    out = run(url, "--compare", "previous-week", "--since", "2026-11-23", "--until", "2026-11-30", "--json")
    assert out.returncode == 0, out.stderr
    document = json.loads(out.stdout)
    assert document["baseline"]["since"].startswith("2026-11-16")
    kpis = {row["kpi"]: row for row in document["kpis"]}
    now_spend, base_spend = spend(rows, START, until), spend(rows, BASE, START)
    assert Decimal(kpis["spend_usd"]["value"]) == now_spend
    assert Decimal(kpis["spend_usd"]["baseline"]) == base_spend
    assert Decimal(kpis["spend_usd"]["change"]) == now_spend - base_spend
    assert kpis["calls"]["value"] == 41 and kpis["calls"]["baseline"] == 40
    now_input = sum(r.usage.input_tokens for r in rows if r.ts >= START) / 41
    assert kpis["input_tokens_per_call"]["value"] == pytest.approx(now_input)
    assert kpis["input_tokens_per_call"]["change_pct"] > 50  # the summaries' prompt grew
    assert kpis["exact_hit_rate"]["baseline"] == pytest.approx(4 / 40)
    assert kpis["active_users"]["value"] == 6
    (top, *_) = document["top_movers"]["feature"]
    assert top["key"] == "search" and Decimal(top["change_usd"]) == Decimal("0.5")
    assert top["change_pct"] is None  # new: no baseline to divide by
    summarise = next(m for m in document["top_movers"]["feature"] if m["key"] == "summarise")
    assert Decimal(summarise["change_usd"]) == sum(
        (r.cost.total for r in rows if r.feature == "summarise" and r.cost is not None and r.ts >= START), Decimal(0)
    ) - sum(
        (r.cost.total for r in rows if r.feature == "summarise" and r.cost is not None and r.ts < START), Decimal(0)
    )
    mix = {m["model"]: m for m in document["model_mix"]}
    assert mix["gpt-4o"]["baseline_share"] == pytest.approx(10 / 40)


def test_text_html_and_an_explicit_baseline(tmp_path: Path) -> None:
    url, rows = seeded(tmp_path)
    page = tmp_path / "review.html"
    out = run(
        url,
        "--baseline",
        "2026-11-16..2026-11-23",
        "--since",
        "2026-11-23",
        "--until",
        "2026-11-30",
        "--html",
        str(page),
    )
    assert out.returncode == 0, out.stderr
    assert "top movers by feature" in out.stdout and "search" in out.stdout
    assert f"${format_usd(spend(rows, START, START + timedelta(days=7)))}" in out.stdout
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "search" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text  # self-contained


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--baseline", "2026-11-16"), "is not FROM..TO"),
        (("--baseline", "2026-11-23..2026-11-16"), "FROM must be before TO"),
        (("--baseline", "2026-11-16..x"), "is not a date"),
        (("--compare", "previous-week", "--baseline", "2026-11-16..2026-11-23"), "choose one"),
        (("--compare", "last-year"), "Invalid value for '--compare'"),
        (("--html", "x.html"), "give --compare or --baseline"),
    ],
)
def test_bad_review_options_are_refused(tmp_path: Path, extra: tuple[str, ...], message: str) -> None:
    url, _ = seeded(tmp_path)
    out = run(url, *extra)
    assert out.returncode == 2 and message in out.stderr, out.stderr
