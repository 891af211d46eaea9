"""Budgets and plans through the gateway, with the official SDKs: refusals (429 budget_exceeded,
Retry-After at the window's reset, a message naming scope and limit), calls that can never fit,
downgrades, streams settled when they end, plans (models, max_tokens caps, urgent calls, their
own budgets), alerts (webhook, log, ledger; once per window and threshold), the admin API, and a
store that cannot be reached (fail closed by default)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.support.budgets import clear_prefix, redis_namespace, webhook
from tests.support.gateway import RunningGateway, running_gateway
from thrifty.core.budgets import units_to_usd
from thrifty.pipeline.budgets.status import budget_status
from thrifty.stores.budgets import open_budget_store

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]
NO_CACHE = {"exact": {"enabled": False}}


def gpt(gateway: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, default_headers=headers)


def budgeted(simulator_url: str, home: Path, limits: list[dict[str, Any]], **overrides: Any) -> Any:
    budgets = {"limits": limits, "refresh_s": 0.2, **overrides.pop("budgets", {})}
    return running_gateway(simulator_url, home, budgets=budgets, cache=NO_CACHE, **overrides)


def status(gateway: RunningGateway) -> list[dict[str, Any]]:
    """Every budget's status, read from the store by a client of its own."""
    limits = gateway.runtime.limits
    assert limits is not None
    engine = limits.engine

    async def read() -> list[dict[str, Any]]:
        store = open_budget_store(engine.store.url, prefix=gateway.runtime.config.budgets.key_prefix)
        try:
            rows = await budget_status(store, [*engine.budgets, *engine.plan_budgets()])
            return [row.as_json() for row in rows]
        finally:
            await store.close()

    return asyncio.run(read())


def settled(gateway: RunningGateway, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The status once no reservation is in flight."""
    deadline = time.monotonic() + timeout
    while True:
        rows = status(gateway)
        if all(Decimal(str(r["reserved"])) == 0 for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def calls(gateway: RunningGateway, expected: int) -> list[Any]:
    """The ledger's rows of calls (alert events left out), once there are ``expected``."""
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in gateway.records(expected, timeout=1) if r.status != "budget_alert"]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def seconds_to_midnight_utc() -> float:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


def test_a_usd_budget_refuses_with_budget_exceeded_and_retry_after(simulator_url: str, tmp_path: Path) -> None:
    # One call of ~12 input and at most 20 output tokens on gpt-4o-mini may cost $0.0000138: the
    # budget fits one such call, not two.
    limits = [{"scope": "user", "value": "alice", "usd": "0.00002", "window": "day"}]
    with budgeted(simulator_url, tmp_path, limits) as gateway:
        client = gpt(gateway, **{"x-thrifty-user": "alice"})
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)  # type: ignore[arg-type]
        error = refused.value
        assert error.status_code == 429
        body: Any = error.body
        assert body["type"] == "budget_exceeded" and body["code"] == "budget_exceeded"
        assert "user alice" in body["message"] and "$0.00002 per day (UTC)" in body["message"]
        retry_after = int(error.response.headers["retry-after"])
        assert abs(retry_after - math.ceil(seconds_to_midnight_utc())) <= 2
        # Someone else is not covered by alice's budget.
        gpt(gateway, **{"x-thrifty-user": "bob"}).chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,  # type: ignore[arg-type]
            max_tokens=20,
        )
        records = calls(gateway, 3)
        ok, refused_row, bob = records
        assert refused_row.status == "error" and refused_row.http_status == 429
        assert refused_row.cost is not None and refused_row.cost.total == 0
        (row,) = settled(gateway)
        assert ok.cost is not None
        assert Decimal(row["spent"]) == ok.cost.total  # the counter holds exactly the ledger's cost
        assert row["reserved"] == "0"
        assert bob.user == "bob"


def test_a_call_that_can_never_fit_is_refused_at_once(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "global", "usd": "0.001", "window": "month"}]
    with budgeted(simulator_url, tmp_path, limits) as gateway:
        began = time.perf_counter()
        with pytest.raises(openai.RateLimitError) as refused:
            gpt(gateway).chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=5000)  # type: ignore[arg-type]
        assert time.perf_counter() - began < 1.0
        body: Any = refused.value.body
        assert body["type"] == "budget_exceeded"
        assert "can never fit" in body["message"] and "$0.001 per month (UTC)" in body["message"]
        assert "retry-after" not in refused.value.response.headers


def test_a_tokens_budget_settles_a_stream_when_it_ends(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "feature", "value": "chat", "tokens": 1000, "window": "week", "timezone": "Europe/Paris"}]
    with budgeted(simulator_url, tmp_path, limits) as gateway:
        client = gpt(gateway, **{"x-thrifty-feature": "chat"})
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=40, stream=True)  # type: ignore[arg-type]
        text = "".join((chunk.choices[0].delta.content or "") for chunk in stream if chunk.choices)
        assert text
        (record,) = calls(gateway, 1)
        (row,) = settled(gateway)
        assert row["spent"] == record.usage.input_tokens + record.usage.output_tokens
        assert row["window"] == "per week (Europe/Paris)"
        # The week resets at Monday midnight in Paris.
        resets = datetime.fromisoformat(row["resets_at"])
        from zoneinfo import ZoneInfo

        local = resets.astimezone(ZoneInfo("Europe/Paris"))
        assert local.weekday() == 0 and (local.hour, local.minute) == (0, 0)


def test_a_stream_abandoned_midway_is_settled_too(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "global", "tokens": 100_000, "window": "day"}]
    with budgeted(simulator_url, tmp_path, limits) as gateway:
        client = gpt(gateway)
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=200, stream=True)  # type: ignore[arg-type]
        for _ in stream:
            break
        stream.close()
        (record,) = calls(gateway, 1)
        (row,) = settled(gateway)
        assert row["reserved"] == 0
        assert row["spent"] == record.usage.input_tokens + record.usage.output_tokens


def test_at_the_limit_a_downgrade_budget_sends_the_call_to_the_cheaper_model(
    simulator_url: str, tmp_path: Path
) -> None:
    # gpt-4o at 200 output tokens may cost ~$0.002: over the budget; gpt-4o-mini fits.
    limits = [
        {
            "scope": "team",
            "value": "research",
            "usd": "0.0005",
            "window": "day",
            "on_exceed": "downgrade",
            "downgrade_to": "gpt-4o-mini",
        }
    ]
    with budgeted(simulator_url, tmp_path, limits) as gateway:
        client = gpt(gateway, **{"x-thrifty-team": "research"})
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO, max_tokens=200)  # type: ignore[arg-type]
        assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
        (record,) = calls(gateway, 1)
        assert record.served_model == "gpt-4o-mini"
        assert record.details["budget_downgrade"] == {
            "from": "gpt-4o",
            "to": "gpt-4o-mini",
            "budget": "team:research:day:usd",
        }


def test_plans_cap_max_tokens_allow_models_and_give_each_user_a_budget(simulator_url: str, tmp_path: Path) -> None:
    plans = {
        "tiers": {
            "free": {
                "max_tokens": 8,
                "urgent_factor": 3,
                "models": ["gpt-4o-mini", "claude-haiku-4-5"],
                "budgets": [{"tokens": 90, "window": "day"}],
            },
            "pro": {},
        },
        "users": {"paul": "pro"},
        "default": "free",
    }
    with budgeted(simulator_url, tmp_path, [], plans=plans) as gateway:
        free = gpt(gateway, **{"x-thrifty-user": "fiona"})
        with pytest.raises(openai.PermissionDeniedError) as denied:
            free.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        assert "free plan does not include gpt-4o" in str(denied.value)
        capped = free.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=100)  # type: ignore[arg-type]
        assert capped.usage is not None and capped.usage.completion_tokens <= 8
        urgent = gpt(gateway, **{"x-thrifty-user": "fiona", "x-thrifty-urgent": "1"})
        raised = urgent.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=100)  # type: ignore[arg-type]
        assert raised.usage is not None and 8 < raised.usage.completion_tokens <= 24
        # Anthropic clients are capped the same way.
        claude = anthropic.Anthropic(
            base_url=gateway.url, api_key="x", max_retries=0, default_headers={"x-thrifty-user": "fiona"}
        )
        message = claude.messages.create(model="claude-haiku-4-5", max_tokens=500, messages=HELLO)  # type: ignore[arg-type]
        assert message.usage.output_tokens <= 8
        # fiona's plan budget of 90 tokens a day is used up by now; paul (pro) has none.
        with pytest.raises(openai.RateLimitError) as refused:
            free.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=8)  # type: ignore[arg-type]
        assert "user fiona" in str(refused.value) and "90 tokens per day" in str(refused.value)
        gpt(gateway, **{"x-thrifty-user": "paul"}).chat.completions.create(
            model="gpt-4o",
            messages=HELLO,  # type: ignore[arg-type]
            max_tokens=50,
        )
        records = calls(gateway, 6)
        assert records[1].details["plan_max_tokens"] == {"asked": 100, "cap": 8, "urgent": False}
        assert records[2].details["plan_max_tokens"] == {"asked": 100, "cap": 24, "urgent": True}
        assert {r.details.get("plan") for r in records} == {"free", "pro"}
        rows = settled(gateway)
        (fiona,) = [r for r in rows if r["subject"] == "fiona"]
        assert fiona["source"] == "plan:free"
        assert fiona["spent"] == sum(
            r.usage.input_tokens + r.usage.output_tokens for r in records if r.user == "fiona" and r.status == "ok"
        )


def test_alerts_fire_once_per_threshold_to_the_webhook_the_log_and_the_ledger(
    simulator_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limits = [{"scope": "key", "value": None, "tokens": 300, "window": "day", "alert_at": ["0.1", "0.5"]}]
    with webhook(fail_first=2) as hook:
        alerts = {"webhook_url": hook.url, "webhook_backoff_s": 0.05}
        with budgeted(simulator_url, tmp_path, [], budgets={"limits": [*limits, *[]], "alerts": alerts}) as gateway:
            from thrifty.stores.keys import open_keys

            store = open_keys(gateway.runtime.config.storage.ledger)
            _, secret = store.create(user="kim", team=None, feature=None)
            store.close()
            gateway.runtime.keys.load()
            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
            for _ in range(4):  # each call ~30-50 tokens: past 10% on the first, past 50% by the fourth
                client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=25)  # type: ignore[arg-type]
            settled(gateway)
            deadline = time.monotonic() + 5
            while len(hook.events) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # nothing more arrives
            thresholds = sorted(e["threshold"] for e in hook.events)
            assert thresholds == ["0.1", "0.5"], hook.events
            assert hook.attempts == 4  # two refusals retried, then two deliveries
            event = hook.events[0]
            assert event["type"] == "budget.threshold" and event["scope"] == "key" and event["unit"] == "tokens"
            assert event["limit"] == 300 and event["subject"].startswith("key_")
            records = gateway.records(6)
            alerts_rows = [r for r in records if r.status == "budget_alert"]
            assert len(alerts_rows) == 2
            assert alerts_rows[0].cost is not None and alerts_rows[0].cost.total == 0
            assert alerts_rows[0].key_id == event["subject"]
        assert "budget alert" in caplog.text


def test_the_admin_api_manages_budgets_with_a_token(
    simulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with budgeted(simulator_url, tmp_path, []) as gateway:
        assert httpx2.get(f"{gateway.url}/admin/budgets").status_code == 404  # off without a token
    monkeypatch.setenv("TEST_ADMIN_TOKEN", "s3cret-admin")
    with budgeted(simulator_url, tmp_path, [], admin={"token_env": "TEST_ADMIN_TOKEN"}) as gateway:
        url = f"{gateway.url}/admin/budgets"
        assert httpx2.get(url).status_code == 401
        assert httpx2.get(url, headers={"authorization": "Bearer wrong"}).status_code == 401
        auth = {"authorization": "Bearer s3cret-admin"}
        bad = httpx2.put(url, json={"scope": "user", "value": "ann", "usd": "-1"}, headers=auth)
        assert bad.status_code == 400 and "usd" in bad.json()["error"]["message"]
        put = httpx2.put(url, json={"scope": "user", "value": "ann", "usd": "0.00001", "window": "day"}, headers=auth)
        assert put.status_code == 200, put.text
        assert put.json()["budget"]["id"] == "user:ann:day:usd"
        listed = httpx2.get(url, headers=auth).json()["budgets"]
        assert [b["id"] for b in listed] == ["user:ann:day:usd"]
        client = gpt(gateway, **{"x-thrifty-user": "ann"})
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=50)  # type: ignore[arg-type]
        rows = httpx2.get(f"{url}/status", headers=auth).json()["budgets"]
        assert rows[0]["id"] == "user:ann:day:usd" and rows[0]["remaining"] == "0.00001"
        assert rows[0]["resets_at"].endswith("+00:00")
        assert httpx2.delete(f"{url}?id=user:ann:day:usd", headers=auth).status_code == 200
        assert httpx2.delete(f"{url}/user%3Aann%3Aday%3Ausd", headers=auth).status_code == 404
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=50)  # type: ignore[arg-type]


def test_an_unreachable_store_fails_closed_by_default(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "global", "usd": "10", "window": "day"}]
    dead = {"store": "redis://127.0.0.1:1/0"}
    with budgeted(simulator_url, tmp_path, limits, budgets=dead) as gateway:
        with pytest.raises(openai.InternalServerError) as refused:
            gpt(gateway).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        assert refused.value.status_code == 503
        body: Any = refused.value.body
        assert body["code"] == "budget_store_unavailable" and "budgets.fail_open: false" in body["message"]
    with budgeted(simulator_url, tmp_path / "open", limits, budgets={**dead, "fail_open": True}) as gateway:
        gpt(gateway).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        (record,) = calls(gateway, 1)
        assert "let through uncounted" in record.details["budget"]


@pytest.fixture
def redis_store() -> Iterator[tuple[str, str]]:
    url, prefix = redis_namespace()
    yield url, prefix
    clear_prefix(url, prefix)


def test_budgets_on_redis_count_exactly_what_the_ledger_records(
    simulator_url: str, tmp_path: Path, redis_store: tuple[str, str]
) -> None:
    url, prefix = redis_store
    limits = [
        {"scope": "global", "usd": "1", "window": "day"},
        {"scope": "tag", "value": "batch", "tokens": 100_000, "window": "rolling", "seconds": 3600},
    ]
    with budgeted(simulator_url, tmp_path, limits, budgets={"store": url, "key_prefix": prefix}) as gateway:
        client = gpt(gateway, **{"x-thrifty-tags": "batch,nightly"})
        for n in range(5):
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10 + n)  # type: ignore[arg-type]
        claude = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
        claude.messages.create(model="claude-haiku-4-5", max_tokens=30, messages=HELLO)  # type: ignore[arg-type]
        records = calls(gateway, 6)
        rows = {r["id"]: r for r in settled(gateway)}
        total = sum((r.cost.total for r in records if r.cost is not None), Decimal(0))
        assert Decimal(rows["global:*:day:usd"]["spent"]) == total
        tagged = sum(r.usage.input_tokens + r.usage.output_tokens for r in records if "batch" in r.tags)
        assert rows["tag:batch:rolling3600s:tokens"]["spent"] == tagged
        assert rows["tag:batch:rolling3600s:tokens"]["window"] == "rolling 1h"


def test_units_are_exact_pico_dollars() -> None:
    assert units_to_usd(1) == Decimal("0.000000000001")
