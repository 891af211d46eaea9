"""Budget alerts: a log line, a ledger event and a webhook (an HTTP POST of the event as JSON,
retried with backoff). Which alerts fire, once per window and threshold, is decided by the
budget engine through the store; this module only delivers them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
import orjson

from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing.rates import Cost
from thrifty.core.redact import url_origin
from thrifty.providers.retrying import post_retrying
from thrifty.providers.transport import AiohttpTransport, Timeouts

__all__ = ["ALERT_STATUS", "AlertSender", "describe_alert"]

log = logging.getLogger("thrifty.budgets")

ALERT_STATUS = "budget_alert"
"""The ledger status of an alert event (its row has no tokens, costs 0, and its ``details``
hold the event under ``budget_alert``)."""


class _Sink(Protocol):
    def submit(self, record: LedgerRecord) -> None: ...


def describe_alert(event: dict[str, Any]) -> str:
    """One line for the log: which fraction was crossed, or that a call was refused, and the spend
    as a share of the limit (``budget.exceeded`` fires when a call would not fit, maybe at 70%)."""
    spent, limit = Decimal(str(event["spent"])), Decimal(str(event["limit"]))
    share = f"{spent / limit:.0%}" if limit else "-"
    who = f"{event['budget_id']} ({event['subject']})"
    if event.get("type") == "budget.exceeded":
        return f"{who} refused a call that would not fit: spent {event['spent']} of {event['limit']} ({share})"
    crossed = f"{Decimal(str(event['threshold'])):.0%}"
    return f"{who} crossed {crossed} of its limit {event['limit']}: spent {event['spent']} ({share})"


class AlertSender:
    def __init__(
        self,
        writer: _Sink | None,
        *,
        webhook_url: str | None = None,
        webhook_headers: Mapping[str, str] | None = None,
        attempts: int = 5,
        timeout_s: float = 5.0,
        backoff_s: float = 0.5,
    ) -> None:
        self.writer = writer
        self.webhook_url = webhook_url
        self.webhook_headers = {"content-type": "application/json", **(webhook_headers or {})}
        self.attempts = attempts
        self.timeouts = Timeouts(connect=min(timeout_s, 5.0), total=timeout_s)
        self.backoff_s = backoff_s
        self._transport: AiohttpTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent: list[dict[str, Any]] = []
        """The events sent by this process, newest last (bounded)."""

    def send(self, event: dict[str, Any]) -> None:
        """Log and record the event now; post it to the webhook in the background."""
        log.warning("budget alert: %s", describe_alert(event))
        self.sent.append(event)
        del self.sent[:-100]
        if self.writer is not None:
            scope, subject = event["scope"], event["subject"]
            try:
                self.writer.submit(
                    LedgerRecord(
                        requested_model="-",
                        ts=datetime.fromisoformat(event["ts"]),
                        user=subject if scope == "user" else None,
                        team=subject if scope == "team" else None,
                        feature=subject if scope == "feature" else None,
                        key_id=subject if scope == "key" else None,
                        tags=(subject,) if scope == "tag" else (),
                        cost=Cost(),
                        counterfactual_cost=None,
                        status=ALERT_STATUS,
                        details={"budget_alert": event},
                    )
                )
            except Exception:
                log.exception("budget alert: could not write the ledger event")
        if self.webhook_url is not None:
            task = asyncio.ensure_future(self._post(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        assert self.webhook_url is not None
        if self._transport is None:
            self._transport = AiohttpTransport(aiohttp.ClientSession())
        outcome = await post_retrying(
            self._transport,
            self.webhook_url,
            orjson.dumps(event),
            self.webhook_headers,
            self.timeouts,
            attempts=self.attempts,
            backoff=lambda attempt: self.backoff_s * (2**attempt),
        )
        if outcome.problem is not None:
            where = url_origin(self.webhook_url)  # a webhook's path is often its secret
            log.error("budget alert webhook %s: %s; giving up on event %s", where, outcome.problem, event["id"])

    async def close(self, timeout: float = 10.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        if self._transport is not None:
            await self._transport.close()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
