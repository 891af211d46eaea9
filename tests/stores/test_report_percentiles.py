"""``thrifty report``: latency and time-to-first-token percentiles per group (issue 14.5), the
same numbers on SQLite and PostgreSQL -- PostgreSQL's ``percentile_cont``, and SQLite's values
interpolated the same way in Python -- and ``-``/null for a group with no streamed call."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thrifty.cli.main import main
from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing.rates import Cost
from thrifty.core.usage import Usage
from thrifty.stores.ledger import Percentiles, open_ledger
from thrifty.stores.ledger.base import percentiles

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _call(n: int, model: str, latency: float | None, ttft: float | None, tags: tuple[str, ...] = ()) -> LedgerRecord:
    return LedgerRecord(
        requested_model=model,
        served_model=model,
        ts=T0 + timedelta(seconds=n),
        user="alice" if n % 2 else "bob",
        tags=tags,
        usage=Usage(input_tokens=10, output_tokens=5),
        cost=Cost(uncached_input=Decimal("0.0001"), output=Decimal("0.0002")),
        latency_ms=latency,
        ttft_ms=ttft,
        stream=ttft is not None,
    )


# gpt-4o: 1..10 ms latencies, four of them streamed; claude: one call, never streamed.
GPT = [_call(n, "gpt-4o", float(n), float(n) / 4 if n <= 4 else None, ("a",) if n <= 5 else ()) for n in range(1, 11)]
CLAUDE = [_call(11, "claude-haiku-4-5", 1234.5, None, ("a", "b"))]


def _expected(values: list[float], fraction: float) -> float:
    """percentile_cont by hand: between the two nearest ranks, linearly."""
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_percentiles_interpolate_like_percentile_cont() -> None:
    assert percentiles([]) is None
    assert percentiles([7.0]) == Percentiles(7.0, 7.0, 7.0)
    values = [float(v) for v in range(1, 11)]
    found = percentiles(list(reversed(values)))
    assert found is not None
    assert (found.p50, found.p95, found.p99) == pytest.approx((5.5, 9.55, 9.91), abs=1e-12)
    assert found.p95 == _expected(values, 0.95)


def _report(ledger_url: str, *args: str, capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()
    assert main(["report", "--ledger", ledger_url, *args]) == 0
    return capsys.readouterr()


def test_report_gives_latency_and_ttft_percentiles_per_group(
    ledger_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_BUDGETS_URL", raising=False)
    store = open_ledger(ledger_url)
    store.insert_rows([r.to_values() for r in [*GPT, *CLAUDE]])
    store.close()
    done = json.loads(_report(ledger_url, "--by", "model,user,tag", "--json", capsys=capsys).out)
    by_model = {row["key"]: row for row in done["by"]["model"]}
    gpt = by_model["gpt-4o"]
    latencies = [float(n) for n in range(1, 11)]
    ttfts = [n / 4 for n in range(1, 5)]
    assert gpt["latency_ms"] == {f"p{round(f * 100)}": _expected(latencies, f) for f in (0.5, 0.95, 0.99)}
    assert gpt["ttft_ms"] == {f"p{round(f * 100)}": _expected(ttfts, f) for f in (0.5, 0.95, 0.99)}
    assert gpt["latency_ms"]["p50"] == 5.5 and gpt["ttft_ms"]["p50"] == 0.625
    claude = by_model["claude-haiku-4-5"]
    assert claude["latency_ms"] == {"p50": 1234.5, "p95": 1234.5, "p99": 1234.5}
    assert claude["ttft_ms"] is None  # never streamed: no time to first token
    by_user = {row["key"]: row for row in done["by"]["user"]}
    odd = [float(n) for n in range(1, 12, 2)]  # alice: the odd calls, claude's 1234.5 among them
    odd[-1] = 1234.5
    assert by_user["alice"]["latency_ms"]["p95"] == _expected(odd, 0.95)
    by_tag = {row["key"]: row for row in done["by"]["tag"]}  # a call counts under each of its tags
    assert by_tag["a"]["latency_ms"]["p50"] == _expected([1.0, 2.0, 3.0, 4.0, 5.0, 1234.5], 0.5)
    assert by_tag["b"]["latency_ms"]["p99"] == 1234.5 and by_tag["b"]["ttft_ms"] is None
    text = _report(ledger_url, "--by", "model", capsys=capsys).out
    assert "latency ms p50/p95/p99" in text and "ttft ms p50/p95/p99" in text
    (gpt_line,) = [line for line in text.splitlines() if line.strip().startswith("gpt-4o")]
    assert gpt_line.split()[-2:] == ["6/10/10", "1/1/1"]
    (claude_line,) = [line for line in text.splitlines() if line.strip().startswith("claude-haiku-4-5")]
    assert claude_line.split()[-2:] == ["1,234/1,234/1,234", "-"]  # whole ms, half to even


def test_sqlite_and_postgres_give_the_same_percentiles(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import random

    rng = random.Random(5)
    rows = [
        _call(n, rng.choice(["m1", "m2", "m3"]), rng.uniform(50, 9000), rng.choice([None, rng.uniform(5, 800)]))
        for n in range(400)
    ]
    found = []
    for url in (f"sqlite:///{tmp_path / 'l.db'}", postgres_url):
        store = open_ledger(url)
        store.insert_rows([r.to_values() for r in rows])
        found.append({x.key: x for x in store.latencies("model")})
        store.close()
    assert found[0] == found[1]  # exactly: the same interpolation, in the same floating point
    assert set(found[0]) == {"m1", "m2", "m3"}
