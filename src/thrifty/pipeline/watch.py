"""Alerts beyond budgets, watched: every ``alerts.interval_s`` the ledger's sums for the last
window are compared with the weeks before (``thrifty.core.anomaly``), and each alert found is
claimed in the ledger database (``alert_claims``: one process wins, so an alert fires once per
window however many gateways check) and delivered like a budget alert -- a log line, a ledger row
(status ``spend_alert``), and a webhook POST in the background (the event, or Slack's ``{"text"}``).
A check or a webhook that fails is logged and never touches a request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
import orjson

from thrifty.config.alerts import AlertsConfig
from thrifty.core.anomaly import Drift, SpendAnomaly, drifts, spend_anomalies, window_start
from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing.rates import Cost
from thrifty.core.redact import url_origin
from thrifty.providers.retrying import post_retrying
from thrifty.providers.transport import AiohttpTransport, Timeouts
from thrifty.stores.ledger import LedgerStore
from thrifty.stores.ledger.side import SideTable

__all__ = ["SPEND_ALERT_STATUS", "AlertClaims", "SpendWatch", "find_alerts", "sample_event"]

log = logging.getLogger("thrifty.alerts")

SPEND_ALERT_STATUS = "spend_alert"
Alert = SpendAnomaly | Drift


class _Sink(Protocol):
    def submit(self, record: LedgerRecord) -> None: ...


class AlertClaims(SideTable):
    def claim(self, alert_id: str, at: datetime) -> bool:
        """Whether this process is the first to claim the alert (then it sends it)."""
        stamp: Any = at if self._postgres else at.isoformat()
        rows = self._query(
            "INSERT INTO alert_claims (id, claimed_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
            (alert_id, stamp),
        )
        return bool(rows)


def find_alerts(store: LedgerStore, spec: AlertsConfig, now: datetime) -> list[Alert]:
    """Every anomaly and drift the ledger shows at ``now`` (the current, partial window counts)."""
    found: list[Alert] = []
    anomaly = spec.anomaly
    if anomaly.enabled:
        window = timedelta(seconds=anomaly.window_s)
        since = window_start(now, window)
        for dimension in anomaly.dimensions:
            current = {t.key: t.cost_usd for t in store.totals(dimension, since, now)}
            if not any(spent >= anomaly.min_usd for spent in current.values()):
                continue  # nothing could fire: the weeks before need not be read
            elapsed = now - since  # the same part of the same window, in each week before
            history = [
                {t.key: t.cost_usd for t in store.totals(dimension, since - w, since - w + elapsed)}
                for w in (timedelta(weeks=i) for i in range(1, anomaly.weeks + 1))
            ]
            found += spend_anomalies(
                dimension, current, history, k=anomaly.k, min_usd=anomaly.min_usd, since=since, until=now
            )
    drift = spec.drift
    if drift.enabled:
        window = timedelta(seconds=drift.window_s)
        since = window_start(now, window)
        for dimension in drift.dimensions:
            recent = {t.key: (t.calls, t.input_tokens) for t in store.totals(dimension, now - window, now)}
            before = {
                t.key: (t.calls, t.input_tokens)
                for t in store.totals(dimension, now - window - timedelta(weeks=1), now - window)
            }
            found += drifts(
                dimension,
                recent,
                before,
                threshold_pct=drift.threshold_pct,
                min_calls=drift.min_calls,
                since=since,
                until=now,
            )
    return found


def sample_event() -> dict[str, Any]:
    """What ``thrifty alerts test`` sends: a spend anomaly as the watcher would, marked a test."""
    now = datetime.now(UTC).replace(microsecond=0)
    since = window_start(now, timedelta(hours=1))
    history = (Decimal("1.10"), Decimal("0.95"), Decimal("1.02"), Decimal("0.98"))
    sample = SpendAnomaly(
        "feature", "thrifty-alerts-test", Decimal("12.40"), Decimal("1.00"), history, Decimal(3), since, now
    )
    return {**sample.event(), "test": True, "text": f"thrifty alert (test): {sample.describe()}"}


class SpendWatch:
    def __init__(self, spec: AlertsConfig, store: LedgerStore, claims: AlertClaims, writer: _Sink | None) -> None:
        self.spec = spec
        self.store = store
        self.claims = claims
        self.writer = writer
        self.sent: list[dict[str, Any]] = []
        """The events this process delivered, newest last (bounded)."""
        self._task: asyncio.Task[None] | None = None
        self._posts: set[asyncio.Task[str | None]] = set()
        self._transport: AiohttpTransport | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.spec.interval_s)
            try:
                await self.check(datetime.now(UTC))
            except Exception:
                log.exception("alerts: checking the ledger failed; trying again in %s s", self.spec.interval_s)

    async def check(self, now: datetime) -> list[dict[str, Any]]:
        """Find, claim and deliver the alerts at ``now``; the events this process sent."""
        found = await asyncio.to_thread(find_alerts, self.store, self.spec, now)
        delivered = []
        for alert in found:
            event = {**alert.event(), "ts": now.isoformat(timespec="microseconds")}
            if not await asyncio.to_thread(self.claims.claim, event["id"], now):
                continue  # fired already, here or in another process
            self.deliver(alert, event)
            delivered.append(event)
        return delivered

    def deliver(self, alert: Alert, event: dict[str, Any]) -> None:
        line = alert.describe()
        log.warning("%s alert: %s", event["type"], line)
        self.sent.append(event)
        del self.sent[:-100]
        if self.writer is not None:
            dimension, value = event["dimension"], event["value"]
            try:
                self.writer.submit(
                    LedgerRecord(
                        requested_model=value if dimension == "model" else "-",
                        ts=datetime.fromisoformat(event["ts"]),
                        team=value if dimension == "team" else None,
                        feature=value if dimension == "feature" else None,
                        user=value if dimension == "user" else None,
                        key_id=value if dimension == "key" else None,
                        cost=Cost(),
                        status=SPEND_ALERT_STATUS,
                        details={"spend_alert": event},
                    )
                )
            except Exception:
                log.exception("alerts: could not write the ledger event")
        if self.spec.webhook_url is not None:
            body = {"text": f"thrifty alert: {line}"} if self.spec.webhook_format == "slack" else event
            task = asyncio.ensure_future(self.post(body, str(event["id"])))
            self._posts.add(task)
            task.add_done_callback(self._posts.discard)

    async def post(self, body: dict[str, Any], event_id: str) -> str | None:
        """POST ``body`` to the webhook, retried; the problem, or None once delivered."""
        url = self.spec.webhook_url
        assert url is not None
        if self._transport is None:
            self._transport = AiohttpTransport(aiohttp.ClientSession())
        timeout = self.spec.webhook_timeout_s
        outcome = await post_retrying(
            self._transport,
            url,
            orjson.dumps(body),
            {"content-type": "application/json", **self.spec.webhook_headers},
            Timeouts(connect=min(timeout, 5.0), total=timeout),
            attempts=self.spec.webhook_attempts,
            backoff=lambda attempt: 0.5 * (2**attempt),
        )
        if outcome.problem is not None:
            log.error("alert webhook %s: %s; giving up on %s", url_origin(url), outcome.problem, event_id)
        return outcome.problem

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._posts:
            await asyncio.wait(list(self._posts), timeout=10)
        if self._transport is not None:
            await self._transport.close()
        self.claims.close()
