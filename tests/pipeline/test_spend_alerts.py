"""Alerts beyond budgets over a real ledger (SQLite and PostgreSQL): a spend spike fires an anomaly
and steady traffic does not; a prompt that grew fires a drift and one that did not does not; each
alert fires once per window, however many processes check; delivered to the log, the ledger and a
webhook (JSON or Slack's text); ``thrifty alerts check`` and ``thrifty alerts test``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.budgets import webhook
from thrifty.config.alerts import AlertsConfig
from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing.rates import Cost
from thrifty.core.usage import Usage
from thrifty.pipeline.watch import SPEND_ALERT_STATUS, AlertClaims, SpendWatch
from thrifty.stores.ledger import open_ledger

NOW = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)  # a Monday afternoon; the hour began at 14:00
HOUR = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def call(at: datetime, feature: str, usd: str, input_tokens: int = 100) -> LedgerRecord:
    return LedgerRecord(
        requested_model="gpt-4o-mini",
        ts=at,
        feature=feature,
        team="red",
        usage=Usage(input_tokens=input_tokens, output_tokens=10),
        cost=Cost(output=Decimal(usd)),
    )


def history() -> list[LedgerRecord]:
    rows = []
    for week in range(1, 5):  # the same half hour of the four Mondays before
        at = HOUR - timedelta(weeks=week) + timedelta(minutes=10)
        rows += [call(at, "chat", "0.5"), call(at, "chat", "0.5"), call(at, "steady", "2")]
        rows.append(call(at, "tiny", "0.01"))
    for i in range(60):  # the week before the last day: 1,000 input tokens a call
        at = NOW - timedelta(days=1) - timedelta(hours=2 * i + 1)
        rows += [call(at, "summarise", "0.0001", 1000), call(at, "classify", "0.0001", 1000)]
    return rows


def steady_now() -> list[LedgerRecord]:
    at = HOUR + timedelta(minutes=5)
    rows = [call(at, "chat", "0.5"), call(at, "chat", "0.6"), call(at, "steady", "2.2"), call(at, "tiny", "0.02")]
    for i in range(60):
        at = NOW - timedelta(minutes=20 * i + 1)
        rows += [call(at, "summarise", "0.0001", 1000), call(at, "classify", "0.0001", 1050)]
    return rows


def spiky_now() -> list[LedgerRecord]:
    at = HOUR + timedelta(minutes=5)
    rows = [call(at, "chat", "4"), call(at, "chat", "6"), call(at, "steady", "2.2"), call(at, "tiny", "0.9")]
    for i in range(60):
        at = NOW - timedelta(minutes=20 * i + 1)
        rows += [call(at, "summarise", "0.0001", 1500), call(at, "classify", "0.0001", 1050)]
    return rows


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))


def seed(url: str, rows: list[LedgerRecord]) -> None:
    store = open_ledger(url)
    try:
        store.insert_rows([r.to_values() for r in rows])
    finally:
        store.close()


class Sink:
    def __init__(self) -> None:
        self.records: list[LedgerRecord] = []

    def submit(self, record: LedgerRecord) -> None:
        self.records.append(record)


def check(url: str, spec: AlertsConfig, sink: Sink | None = None) -> list[dict[str, Any]]:
    async def once() -> list[dict[str, Any]]:
        watch = SpendWatch(spec, open_ledger(url), AlertClaims(url), sink)
        try:
            return await watch.check(NOW)
        finally:
            await watch.stop()

    return asyncio.run(once())


def test_steady_traffic_fires_nothing(ledger_url: str) -> None:
    seed(ledger_url, history() + steady_now())
    assert check(ledger_url, AlertsConfig(enabled=True)) == []


def test_a_spike_and_a_grown_prompt_fire_once_each_to_the_ledger_and_the_webhook(ledger_url: str) -> None:
    seed(ledger_url, history() + spiky_now())
    with webhook() as hook:
        spec = AlertsConfig(enabled=True, webhook_url=hook.url)
        sink = Sink()
        sent = check(ledger_url, spec, sink)
        assert sorted((e["type"], e["dimension"], e["value"]) for e in sent) == [
            ("spend.anomaly", "feature", "chat"),  # $10 against a median of $1; tiny's $0.90 is under $1
            ("spend.anomaly", "model", "gpt-4o-mini"),  # the model's hour: $13.10 and change against $3.01
            ("spend.anomaly", "team", "red"),  # and the team's
            ("tokens.drift", "feature", "summarise"),  # +50%; classify's +5% is under 25%
        ]
        chat = next(e for e in sent if e["value"] == "chat")
        assert Decimal(chat["spent"]) == 10 and Decimal(chat["median"]) == 1 and chat["ratio"] == "10.00"
        drift = next(e for e in sent if e["type"] == "tokens.drift")
        assert drift["change_pct"] == pytest.approx(50.0) and drift["calls"] == 60
        assert [r.status for r in sink.records] == [SPEND_ALERT_STATUS] * 4
        assert sink.records[0].details["spend_alert"]["id"] == sent[0]["id"]
        assert sorted(e["id"] for e in hook.events) == sorted(e["id"] for e in sent)
        assert check(ledger_url, spec) == []  # once per window: claimed
        assert check(ledger_url, AlertsConfig(enabled=True)) == []  # by any process on this ledger


def test_the_slack_format_posts_text(ledger_url: str) -> None:
    seed(ledger_url, history() + spiky_now())
    with webhook() as hook:
        spec = AlertsConfig(enabled=True, webhook_url=hook.url, webhook_format="slack", drift={"enabled": False})
        check(ledger_url, spec)
        texts = sorted(event["text"] for event in hook.events)
    assert len(texts) == 3 and all(set(event) == {"text"} for event in hook.events)
    assert texts[0].startswith("thrifty alert: feature 'chat' spent $10")


def test_a_dead_webhook_is_logged_not_raised(ledger_url: str) -> None:
    seed(ledger_url, history() + spiky_now())
    spec = AlertsConfig(enabled=True, webhook_url="http://127.0.0.1:1/hook", webhook_attempts=1, webhook_timeout_s=0.5)
    assert len(check(ledger_url, spec)) == 4


def test_the_cli_checks_and_sends_a_sample(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    seed(url, history() + spiky_now())
    with webhook() as hook:
        config = {
            "storage": {"ledger": url},
            "providers": {"openai": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}},
            "models": [{"name": "gpt-4o-mini", "provider": "openai"}],
            "alerts": {"enabled": True, "webhook_url": hook.url},
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        cli = [sys.executable, "-m", "thrifty.cli.main", "alerts"]
        found = subprocess.run(
            [*cli, "check", "--config", str(path), "--at", NOW.isoformat(), "--json"],
            check=False,
            capture_output=True,
            text=True,
        )
        assert found.returncode == 0, found.stderr
        assert len(json.loads(found.stdout)["alerts"]) == 4
        assert hook.events == []  # check sends nothing
        sent = subprocess.run([*cli, "test", "--config", str(path)], check=False, capture_output=True, text=True)
        assert sent.returncode == 0, sent.stderr
        (sample,) = hook.events
        assert sample["test"] is True and sample["type"] == "spend.anomaly"
    config["alerts"] = {"enabled": True}
    path.write_text(yaml.safe_dump(config))
    nowhere = subprocess.run([*cli, "test", "--config", str(path)], check=False, capture_output=True, text=True)
    assert nowhere.returncode == 2 and "webhook_url is not set" in nowhere.stderr


def test_a_running_gateway_watches_its_ledger(simulator_url: str, tmp_path: Path) -> None:
    import time

    from tests.support.gateway import running_gateway

    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    rows = [call(hour - timedelta(weeks=w) + (now - hour) / 2, "chat", "1") for w in range(1, 5)]
    rows.append(call(hour + (now - hour) / 2, "chat", "25"))
    seed(f"sqlite:///{tmp_path / 'ledger.db'}", rows)
    alerts = {"enabled": True, "interval_s": 5, "anomaly": {"dimensions": ["feature"]}, "drift": {"enabled": False}}
    with running_gateway(simulator_url, tmp_path, alerts=alerts) as gateway:
        watch = gateway.runtime.watch
        assert watch is not None
        deadline = time.monotonic() + 30
        while not watch.sent and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [(e["type"], e["value"]) for e in watch.sent] == [("spend.anomaly", "chat")]
        (row,) = [r for r in gateway.records(6) if r.status == SPEND_ALERT_STATUS]
        assert row.feature == "chat" and row.details["spend_alert"]["spent"] == "25"
