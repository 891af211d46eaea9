"""Budget arithmetic (windows and their resets in UTC and in a time zone, the most a call can
cost, exact money units) and the two stores (SQLite and Redis) behind one protocol: atomic
all-or-nothing reservations, settlement, lapsed leases, rolling windows and sliding rate windows."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.budgets import clear_prefix, redis_namespace
from thrifty.core.budgets import (
    Budget,
    BudgetError,
    Subject,
    Window,
    budget_from_doc,
    budget_to_doc,
    max_call_cost,
    max_output_tokens,
    units_to_usd,
    usd_to_units,
)
from thrifty.core.pricing.rates import Rate, Rates, Tier
from thrifty.stores.budgets import BudgetStore, Line, RateLine, line_key, open_budget_store


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_calendar_windows_reset_at_local_midnight() -> None:
    day = Window("day").period(at("2026-05-01T23:59:59+00:00"))
    assert (day.key, day.start, day.reset) == (
        "day:2026-05-01",
        at("2026-05-01T00:00:00+00:00"),
        at("2026-05-02T00:00:00+00:00"),
    )
    paris = Window("day", timezone="Europe/Paris").period(at("2026-05-01T22:30:00+00:00"))  # 00:30 on the 2nd in Paris
    assert paris.key == "day:2026-05-02" and paris.reset == at("2026-05-02T22:00:00+00:00")
    # The day the clocks go forward in Paris is 23 hours long.
    spring = Window("day", timezone="Europe/Paris").period(at("2026-03-29T12:00:00+00:00"))
    assert spring.start is not None and spring.reset is not None
    assert (spring.reset - spring.start).total_seconds() == 23 * 3600
    week = Window("week").period(at("2026-05-03T10:00:00+00:00"))  # a Sunday
    assert week.key == "week:2026-04-27" and week.reset == at("2026-05-04T00:00:00+00:00")
    month = Window("month", timezone="America/New_York").period(at("2027-01-01T03:00:00+00:00"))  # still Dec 31 there
    assert month.key == "month:2026-12" and month.reset == at("2027-01-01T05:00:00+00:00")
    assert Window("rolling", 3600).period(at("2026-05-01T00:00:00+00:00")).key == "rolling"
    with pytest.raises(BudgetError):
        Window("day", timezone="Nowhere/Atlantis")
    with pytest.raises(BudgetError):
        Window("rolling", 10)


def test_money_units_are_exact_and_round_up() -> None:
    assert usd_to_units(Decimal("0.0000138")) == 13_800_000
    assert units_to_usd(usd_to_units(Decimal("1.234567890123"))) == Decimal("1.234567890123")
    assert usd_to_units(Decimal("0.0000000000001")) == 1  # below a pico-dollar: never rounded to free


def test_the_most_a_call_can_cost() -> None:
    rates = Rates(
        input=Rate(Decimal("1.25"), (Tier(200_000, Decimal("2.5")),)),
        output=Rate(Decimal("10")),
        cache_read=Rate(Decimal("0.125")),
        cache_write_5m=Rate(Decimal("1.5625")),
        cache_write_1h=Rate(Decimal("2.5")),
        reasoning=Rate(Decimal("12")),
    )
    # Output at the dearer of output and reasoning; input at the tier the call's size reaches.
    assert max_call_cost(rates, 1000, 100) == (Decimal("1.25") * 1000 + Decimal(12) * 100) / 1_000_000
    assert max_call_cost(rates, 300_000, 0) == Decimal("2.5") * 300_000 / 1_000_000
    assert max_call_cost(rates, 1000, 0, cache_writes=True) == Decimal("2.5") * 1000 / 1_000_000
    assert max_output_tokens(100, 4096, 128_000, 500, 16_384) == 100
    assert max_output_tokens(None, 4096, 128_000, 500, 16_384) == 4096
    assert max_output_tokens(None, None, 8_000, 500, 16_384) == 7_500
    assert max_output_tokens(None, None, None, 500, 16_384) == 16_384


def test_which_budgets_apply_to_a_call() -> None:
    each_user = Budget("user", None, Window("day"), "usd", 5)
    alice = Budget("user", "alice", Window("day"), "usd", 5)
    tag = Budget("tag", "batch", Window("week"), "tokens", 5)
    everyone = Budget("global", None, Window("month"), "usd", 5)
    call = Subject(user="alice", tags=("batch", "nightly"))
    assert each_user.subjects(call) == ("alice",) and alice.subjects(call) == ("alice",)
    assert alice.subjects(Subject(user="bob")) == () and each_user.subjects(Subject()) == ()
    assert tag.subjects(call) == ("batch",) and everyone.subjects(Subject()) == ("*",)
    assert alice.id == "user:alice:day:usd" and each_user.id == "user:*:day:usd"
    assert budget_from_doc(budget_to_doc(tag)) == tag
    with pytest.raises(BudgetError):
        Budget("global", "x", Window("day"), "usd", 5)
    with pytest.raises(BudgetError):
        Budget("user", "x", Window("day"), "usd", 5, on_exceed="downgrade")


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'budgets.db'}", ""
        return
    url, prefix = redis_namespace()
    yield url, prefix
    clear_prefix(url, prefix)


async def _open(url: str, prefix: str, lease_s: float = 15.0) -> BudgetStore:
    return open_budget_store(url, prefix=prefix or "x:", lease_s=lease_s)


def _line(name: str, amount: int, limit: int, **more: int) -> Line:
    return Line(line_key(name, "s", "day:2026-01-01"), amount, limit, ttl_s=3600, **more)


def test_reservations_are_all_or_nothing_and_settle_exactly(store_url: tuple[str, str]) -> None:
    async def scenario() -> None:
        store = await _open(*store_url)
        try:
            a, b = _line("a", 60, 100), _line("b", 60, 1000)
            assert await store.reserve("r1", [a, b]) is None
            refusal = await store.reserve("r2", [b, a])
            assert refusal is not None and (refusal.index, refusal.spent, refusal.reserved) == (1, 0, 60)
            usage = await store.usage([a, b])
            assert [(u.spent, u.reserved) for u in usage] == [(0, 60), (0, 60)]  # r2 took nothing from b
            assert await store.settle("r1", [_line("a", 25, 100), _line("b", 25, 1000)]) == [25, 25]
            assert await store.reserve("r3", [a]) is None
            await store.release("r3")
            await store.release("r3")  # twice is harmless
            assert [(u.spent, u.reserved) for u in await store.usage([a])] == [(25, 0)]
            # A settlement whose reservation is gone (lapsed) still counts the spend.
            assert await store.settle("gone", [_line("a", 5, 100)]) == [30]
            assert await store.subjects("a", "day:2026-01-01") == ["s"]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_dead_owners_reservations_lapse_with_its_lease(store_url: tuple[str, str]) -> None:
    async def scenario() -> None:
        dead = await _open(*store_url, lease_s=1)
        live = await _open(*store_url, lease_s=30)
        try:
            line = _line("lease", 80, 100)
            assert await dead.reserve("held", [line]) is None
            assert await live.reserve("other", [_line("lease", 30, 100)]) is not None
            await asyncio.sleep(1.2)  # the dead one renews nothing
            await live.heartbeat()
            assert [(u.spent, u.reserved) for u in await live.usage([line])] == [(0, 0)]
            assert await live.reserve("other", [_line("lease", 30, 100)]) is None
        finally:
            await dead.close()
            await live.close()

    asyncio.run(scenario())


def test_rolling_windows_and_definitions_and_alert_claims(store_url: tuple[str, str]) -> None:
    async def scenario() -> None:
        store = await _open(*store_url)
        try:
            line = Line(line_key("roll", "s", "rolling"), 70, 100, rolling_ms=60_000, bucket_ms=1000, ttl_s=120)
            assert await store.reserve("r1", [line]) is None
            assert await store.settle("r1", [Line(line.key, 50, 100, 60_000, 1000, 120)]) == [50]
            refusal = await store.reserve("r2", [Line(line.key, 60, 100, 60_000, 1000, 120)])
            assert refusal is not None and refusal.retry_after_s is not None and 59 <= refusal.retry_after_s <= 62
            (usage,) = await store.usage([line])
            assert usage.spent == 50 and usage.frees_at is not None and usage.frees_at > time.time() + 55
            doc = {"id": "x", "scope": "global"}
            assert await store.put_definition("x", doc, only_new=True)
            assert not await store.put_definition("x", {**doc, "v": 2}, only_new=True)
            assert await store.definitions() == [doc]
            assert await store.delete_definition("x") and not await store.delete_definition("x")
            assert await store.claim_alert("k", 60) and not await store.claim_alert("k", 60)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_sliding_rate_window_never_admits_more_than_its_limit(store_url: tuple[str, str]) -> None:
    window_ms, limit = 1000, 500

    async def worker(store: BudgetStore, admitted: list[tuple[float, int]], rng: random.Random, until: float) -> None:
        while time.time() < until:
            amount = rng.randint(1, 60)
            if await store.admit([RateLine("rl", amount, limit, window_ms, 50)]) is None:
                admitted.append((time.time(), amount))
            await asyncio.sleep(rng.uniform(0, 0.01))

    async def scenario() -> list[tuple[float, int]]:
        stores = [await _open(*store_url) for _ in range(3)]
        admitted: list[tuple[float, int]] = []
        until = time.time() + 2.5
        try:
            await asyncio.gather(*(worker(s, admitted, random.Random(n), until) for n, s in enumerate(stores)))
        finally:
            for store in stores:
                await store.close()
        return sorted(admitted)

    admitted = asyncio.run(scenario())
    assert sum(a for _, a in admitted) > 2 * limit  # the load went on for more than two windows
    start, total = 0, 0
    for when, amount in admitted:
        total += amount
        while admitted[start][0] <= when - window_ms / 1000:
            total -= admitted[start][1]
            start += 1
        assert total <= limit


def test_an_alert_line_says_the_fraction_crossed_or_the_refusal() -> None:
    from thrifty.pipeline.alerts import describe_alert

    base = {"budget_id": "user:ann:day:usd", "subject": "ann", "limit": "0.0002", "spent": "0.00014"}
    crossed = describe_alert({**base, "type": "budget.threshold", "threshold": "0.5"})
    assert "crossed 50% of its limit 0.0002" in crossed and "(70%)" in crossed
    refused = describe_alert({**base, "type": "budget.exceeded", "threshold": "1"})
    assert "refused a call that would not fit" in refused and "(70%)" in refused and "crossed" not in refused
