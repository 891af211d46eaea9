"""Alerts beyond budgets, decided: a spend anomaly (a feature's, team's or model's spend in the
last window above ``k`` times the median of the same window of the week in the weeks before, and
above a minimum amount) and token drift (a feature's average input tokens up more than a share on
its trailing week's: a prompt edit that lengthened the system prompt). Pure: the sums come from
the ledger, the delivery is elsewhere (``thrifty.pipeline.watch``)."""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from thrifty.core.pricing import format_usd

__all__ = ["Drift", "SpendAnomaly", "alert_id", "drifts", "spend_anomalies", "window_start"]


@dataclass(frozen=True, slots=True)
class SpendAnomaly:
    dimension: str
    value: str
    spent: Decimal
    median: Decimal
    history: tuple[Decimal, ...]
    factor: Decimal
    since: datetime
    until: datetime

    def event(self) -> dict[str, Any]:
        ratio = None if self.median == 0 else f"{self.spent / self.median:.2f}"
        return {
            "type": "spend.anomaly",
            "id": alert_id("spend.anomaly", self.dimension, self.value, self.since),
            "dimension": self.dimension,
            "value": self.value,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "spent": format_usd(self.spent),
            "median": format_usd(self.median),
            "history": [format_usd(h) for h in self.history],
            "k": str(self.factor),
            "ratio": ratio,
        }

    def describe(self) -> str:
        times = "with none before" if self.median == 0 else f"{self.spent / self.median:.1f}x the median {self.median}"
        return f"{self.dimension} {self.value!r} spent ${self.spent} from {self.since:%a %H:%M} UTC, {times}"


@dataclass(frozen=True, slots=True)
class Drift:
    dimension: str
    value: str
    recent_average: float
    baseline_average: float
    recent_calls: int
    since: datetime
    until: datetime

    @property
    def change_pct(self) -> float:
        return (self.recent_average / self.baseline_average - 1) * 100

    def event(self) -> dict[str, Any]:
        return {
            "type": "tokens.drift",
            "id": alert_id("tokens.drift", self.dimension, self.value, self.since),
            "dimension": self.dimension,
            "value": self.value,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "input_tokens_per_call": round(self.recent_average, 1),
            "baseline_input_tokens_per_call": round(self.baseline_average, 1),
            "change_pct": round(self.change_pct, 1),
            "calls": self.recent_calls,
        }

    def describe(self) -> str:
        return (
            f"{self.dimension} {self.value!r} averages {self.recent_average:,.0f} input tokens a call since "
            f"{self.since:%a %H:%M} UTC, {self.change_pct:+.0f}% on its trailing week's {self.baseline_average:,.0f}"
        )


def alert_id(kind: str, dimension: str, value: str, since: datetime) -> str:
    """The same alert for the same window has the same id: it fires once, whoever evaluates it."""
    digest = hashlib.sha256(f"{kind}\x00{dimension}\x00{value}\x00{since.isoformat()}".encode()).hexdigest()
    return f"alert_{digest[:24]}"


def window_start(now: datetime, window: timedelta) -> datetime:
    """``now`` floored to the window (windows start at multiples of their length since the epoch)."""
    seconds = int(window.total_seconds())
    stamp = int(now.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, tz=now.tzinfo)


def spend_anomalies(
    dimension: str,
    current: Mapping[str | None, Decimal],
    history: Sequence[Mapping[str | None, Decimal]],
    *,
    k: Decimal,
    min_usd: Decimal,
    since: datetime,
    until: datetime,
) -> list[SpendAnomaly]:
    """``current``: spend by value in the window; ``history``: the same window in each week before
    (a value absent from a week spent nothing that week)."""
    out = []
    for value, spent in sorted(current.items(), key=lambda kv: str(kv[0])):
        if value is None or spent < min_usd:
            continue
        past = tuple(week.get(value, Decimal(0)) for week in history)
        median = Decimal(statistics.median(past)) if past else Decimal(0)
        if spent > k * median:
            out.append(SpendAnomaly(dimension, value, spent, median, past, k, since, until))
    return out


def drifts(
    dimension: str,
    recent: Mapping[str | None, tuple[int, int]],
    baseline: Mapping[str | None, tuple[int, int]],
    *,
    threshold_pct: float,
    min_calls: int,
    since: datetime,
    until: datetime,
) -> list[Drift]:
    """``recent`` and ``baseline``: (calls, input tokens) by value."""
    out = []
    for value, (calls, tokens) in sorted(recent.items(), key=lambda kv: str(kv[0])):
        before = baseline.get(value)
        if value is None or calls < min_calls or before is None or before[0] < min_calls or before[1] == 0:
            continue
        now_avg, then_avg = tokens / calls, before[1] / before[0]
        if (now_avg / then_avg - 1) * 100 > threshold_pct:
            out.append(Drift(dimension, value, now_avg, then_avg, calls, since, until))
    return out
