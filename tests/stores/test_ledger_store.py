"""Both ledger backends, against real databases, through the same tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from thrifty.core.ledger import LedgerRecord, new_record_id
from thrifty.core.pricing.rates import Cost
from thrifty.core.usage import Usage
from thrifty.stores.ledger import LedgerStore, open_ledger

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[LedgerStore]:
    store = open_ledger(ledger_url)
    yield store
    store.close()


def record(**changes: object) -> LedgerRecord:
    base: dict[str, object] = {
        "requested_model": "gpt-4o",
        "served_model": "gpt-4o-2024-08-06",
        "ts": T0,
        "provider": "openai",
        "user": "alice",
        "team": "search",
        "feature": "summarise",
        "usage": Usage(input_tokens=1200, cache_read_tokens=1024, output_tokens=300),
        "cost": Cost(uncached_input=Decimal("0.00044"), cache_read=Decimal("0.00128"), output=Decimal("0.003")),
    }
    base.update(changes)
    return LedgerRecord(**base)  # type: ignore[arg-type]


def test_a_record_comes_back_exactly_as_written(ledger: LedgerStore) -> None:
    full = record(
        request_id="req-1",
        key_id="key-9",
        tags=("beta", "eu"),
        usage=Usage(
            input_tokens=5000,
            cache_read_tokens=1000,
            cache_write_5m_tokens=2000,
            cache_write_1h_tokens=500,
            output_tokens=700,
            reasoning_tokens=200,
        ),
        cost=Cost(
            uncached_input=Decimal("0.0045"),
            cache_read=Decimal("0.0003"),
            cache_write=Decimal("0.0105"),
            output=Decimal("0.0105"),
        ),
        counterfactual_cost=Decimal("0.123456789012345678"),
        savings={"exact_cache": Decimal("0.1"), "routing": Decimal("0.0000001")},
        latency_ms=812.5,
        ttft_ms=95.25,
        status="ok",
        http_status=200,
        cache_status="miss",
        route="tier=small reason=short prompt",
        stream=True,
        batch=False,
        details={"finish_reason": "stop", "attempts": [{"status": 429}, {"status": 200}]},
    )
    ledger.insert_rows([full.to_values()])
    (back,) = ledger.records()
    assert back == full


def test_unknown_cost_stays_unknown_and_is_counted_apart(ledger: LedgerStore) -> None:
    ledger.insert_rows(
        [
            record(cost=None, requested_model="mystery-model", served_model=None).to_values(),
            record().to_values(),
        ]
    )
    unknown = next(r for r in ledger.records() if r.requested_model == "mystery-model")
    assert unknown.cost is None
    totals = {t.key: t for t in ledger.totals("model")}
    assert totals["mystery-model"].unpriced_calls == 1
    assert totals["mystery-model"].cost_usd == 0
    assert totals["gpt-4o-2024-08-06"].unpriced_calls == 0
    assert totals["gpt-4o-2024-08-06"].cost_usd == Decimal("0.00472")


def test_sums_are_exact_decimals(ledger: LedgerStore) -> None:
    costs = ["0.1", "0.2", "0.0000001", "0.000000000000000001"]
    ledger.insert_rows([record(cost=Cost(output=Decimal(c))).to_values() for c in costs])
    (total,) = ledger.totals("feature")
    assert total.cost_usd == Decimal("0.300000100000000001")
    assert total.calls == 4
    assert total.input_tokens == 4 * 1200
    assert total.cache_read_tokens == 4 * 1024


def test_inserting_the_same_record_twice_writes_it_once(ledger: LedgerStore) -> None:
    rows = [record().to_values() for _ in range(3)]
    ledger.insert_rows(rows)
    ledger.insert_rows(rows)
    ledger.insert_rows(rows[:1])
    assert ledger.count() == 3


def test_totals_group_by_every_dimension(ledger: LedgerStore) -> None:
    ledger.insert_rows(
        [
            record(user="alice", feature="chat", ts=T0).to_values(),
            record(user="bob", feature="chat", ts=T0 + timedelta(days=1)).to_values(),
            record(user="bob", feature="search", ts=T0 + timedelta(days=1), status="error", cost=None).to_values(),
        ]
    )
    by_user = {t.key: t.calls for t in ledger.totals("user")}
    assert by_user == {"alice": 1, "bob": 2}
    by_feature = {t.key: t.calls for t in ledger.totals("feature")}
    assert by_feature == {"chat": 2, "search": 1}
    by_day = {t.key: t.calls for t in ledger.totals("day")}
    assert by_day == {"2026-03-01": 1, "2026-03-02": 2}
    errors = {t.key: t.errors for t in ledger.totals("user")}
    assert errors == {"alice": 0, "bob": 1}


def test_totals_by_key_and_by_tag(ledger: LedgerStore) -> None:
    ledger.insert_rows(
        [
            record(key_id="key_a", tags=("prod", "search"), ts=T0).to_values(),
            record(key_id="key_a", tags=("prod",), ts=T0).to_values(),
            record(key_id="key_b", tags=(), ts=T0).to_values(),
        ]
    )
    assert {t.key: t.calls for t in ledger.totals("key")} == {"key_a": 2, "key_b": 1}
    by_tag = {t.key: t for t in ledger.totals("tag")}
    assert {k: t.calls for k, t in by_tag.items()} == {"prod": 2, "search": 1}  # once under each tag
    assert by_tag["search"].cost_usd == by_tag["prod"].cost_usd / 2


def test_time_bounds_select_calls_in_the_window(ledger: LedgerStore) -> None:
    ledger.insert_rows([record(ts=T0 + timedelta(hours=h)).to_values() for h in range(10)])
    window = ledger.totals("model", since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=5))
    assert sum(t.calls for t in window) == 3
    assert len(ledger.records(since=T0 + timedelta(hours=8))) == 2
    assert len(ledger.records(limit=4)) == 4


def test_migrating_twice_and_concurrently_is_harmless(ledger_url: str) -> None:
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            store = open_ledger(ledger_url)
            store.close()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = open_ledger(ledger_url)
    store.insert_rows([record().to_values()])
    assert store.count() == 1
    store.close()


def test_naive_report_bounds_are_refused(ledger: LedgerStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.totals("model", since=datetime(2026, 1, 1))


def test_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported ledger URL"):
        open_ledger("mysql://localhost/ledger")


def test_savings_are_summed_by_strategy_exactly(ledger: LedgerStore) -> None:
    ledger.insert_rows(
        [
            record(savings={"exact_cache": Decimal("0.1"), "prompt_cache": Decimal("-0.0000001")}).to_values(),
            record(savings={"exact_cache": Decimal("0.2"), "routing": Decimal("0.05")}).to_values(),
            record().to_values(),
        ]
    )
    assert ledger.savings() == {
        "exact_cache": Decimal("0.3"),
        "prompt_cache": Decimal("-0.0000001"),
        "routing": Decimal("0.05"),
    }
    by_cache = {t.key: t.calls for t in ledger.totals("cache")}
    assert by_cache == {"-": 3}


def test_record_ids_sort_in_the_order_they_were_made_within_one_millisecond() -> None:
    """Rows of one request (an escalated call's two attempts) are read back in id order."""
    ids = []
    for _ in range(200):
        ids.append(new_record_id())
        pause_until = time.perf_counter_ns() + 2_000  # 2 µs: well past the 0.24 µs id resolution
        while time.perf_counter_ns() < pause_until:
            pass
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and i[12] == "7" and i[16] in "89ab" for i in ids)  # UUIDv7 version and variant
