"""The ledger record: one row per model call, with everything needed to explain its cost."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from thrifty.core.pricing.rates import Cost, format_usd
from thrifty.core.usage import Usage

__all__ = ["INTERRUPTED", "LEDGER_COLUMNS", "LOWER_BOUND_STATUSES", "LedgerRecord", "new_record_id"]

INTERRUPTED = "interrupted"
"""The status of a call whose process stopped while it was in flight (recovered from its intent)."""
LOWER_BOUND_STATUSES = (INTERRUPTED, "timeout", "incomplete")
"""Rows of calls or attempts a provider may have billed whose cost is only known in part (their
input at the model's price; details ``cost_lower_bound``): ``thrifty report`` shows them apart."""


def new_record_id() -> str:
    """A UUIDv7 (time-ordered: 48 bits of Unix milliseconds, then random), as 32 hex digits.
    Time order keeps index inserts at the end of the B-tree, which makes ledger writes faster.
    The 12 bits after the version hold the fraction of the millisecond (RFC 9562, method 3), so ids
    made more than ~0.25 µs apart sort in the order they were made -- an escalated call's two rows,
    written a whole upstream call apart, can never swap. No counter, so no shared state.
    Ids need to be unique, not secret: the fast generator will do."""
    nanos = time.time_ns()
    millis, within = divmod(nanos, 1_000_000)
    fraction = within * 4096 // 1_000_000
    rand = random.getrandbits(62)
    # 48 bits of time, version 7, 12 bits of sub-millisecond time, variant 0b10, 62 random bits.
    return f"{(millis << 80) | 0x7 << 76 | fraction << 64 | 1 << 63 | rand:032x}"


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One call, as it happened. ``cost`` is ``None`` when the price is unknown -- never zero."""

    requested_model: str
    ts: datetime
    id: str = field(default_factory=new_record_id)
    request_id: str | None = None
    user: str | None = None
    team: str | None = None
    feature: str | None = None
    key_id: str | None = None
    tags: tuple[str, ...] = ()
    provider: str | None = None
    served_model: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: Cost | None = None
    counterfactual_cost: Decimal | None = None
    """What the call would have cost with no optimisation (no cache, no routing, no compression)."""
    savings: Mapping[str, Decimal] = field(default_factory=dict)
    """Money saved by each strategy, e.g. ``{"exact_cache": Decimal("0.0031")}``."""
    latency_ms: float | None = None
    ttft_ms: float | None = None
    status: str = "ok"
    error: str | None = None
    http_status: int | None = None
    cache_status: str | None = None
    route: str | None = None
    stream: bool = False
    batch: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    """Provider specifics and notes (JSON)."""

    def __post_init__(self) -> None:
        if self.ts.tzinfo is UTC:
            return
        if self.ts.tzinfo is None:
            raise ValueError("ledger timestamps must be timezone-aware UTC")
        if self.ts.utcoffset() != UTC.utcoffset(None):
            object.__setattr__(self, "ts", self.ts.astimezone(UTC))

    def to_values(self) -> tuple[Any, ...]:
        """The row as plain JSON-able values in ``LEDGER_COLUMNS`` order: money as exact decimal
        strings, time as ISO 8601 UTC with microseconds (so it sorts as text)."""
        cost = self.cost
        usage = self.usage
        return (
            self.id,
            self.ts.isoformat(timespec="microseconds"),
            self.request_id,
            self.user,
            self.team,
            self.feature,
            self.key_id,
            _dumps(list(self.tags)) if self.tags else "[]",
            self.provider,
            self.requested_model,
            self.served_model,
            usage.input_tokens,
            usage.cache_read_tokens,
            usage.cache_write_5m_tokens,
            usage.cache_write_1h_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
            None if cost is None else format_usd(cost.uncached_input),
            None if cost is None else format_usd(cost.cache_read),
            None if cost is None else format_usd(cost.cache_write),
            None if cost is None else format_usd(cost.output),
            None if cost is None else format_usd(cost.total),
            _money(self.counterfactual_cost),
            _dumps({k: format_usd(v) for k, v in self.savings.items()}) if self.savings else "{}",
            self.latency_ms,
            self.ttft_ms,
            self.status,
            self.error,
            self.http_status,
            self.cache_status,
            self.route,
            self.stream,
            self.batch,
            _dumps(self.details) if self.details else "{}",
        )

    def to_row(self) -> dict[str, Any]:
        """``to_values`` keyed by column name."""
        return dict(zip(LEDGER_COLUMNS, self.to_values(), strict=True))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LedgerRecord:
        """The inverse of ``to_row``; accepts the values as SQLite or PostgreSQL return them."""
        cost = None
        if row["cost_total"] is not None:
            cost = Cost(
                uncached_input=_decimal(row["cost_uncached_input"]),
                cache_read=_decimal(row["cost_cache_read"]),
                cache_write=_decimal(row["cost_cache_write"]),
                output=_decimal(row["cost_output"]),
            )
        ts = row["ts"]
        if not isinstance(ts, datetime):
            ts = datetime.fromisoformat(str(ts))
        return cls(
            id=str(row["id"]),
            ts=ts,
            request_id=row["request_id"],
            user=row["user_id"],
            team=row["team"],
            feature=row["feature"],
            key_id=row["key_id"],
            tags=tuple(_json(row["tags"], [])),
            provider=row["provider"],
            requested_model=row["requested_model"],
            served_model=row["served_model"],
            usage=Usage(
                input_tokens=int(row["input_tokens"]),
                cache_read_tokens=int(row["cache_read_tokens"]),
                cache_write_5m_tokens=int(row["cache_write_5m_tokens"]),
                cache_write_1h_tokens=int(row["cache_write_1h_tokens"]),
                output_tokens=int(row["output_tokens"]),
                reasoning_tokens=int(row["reasoning_tokens"]),
            ),
            cost=cost,
            counterfactual_cost=None if row["counterfactual_cost"] is None else _decimal(row["counterfactual_cost"]),
            savings={k: Decimal(v) for k, v in _json(row["savings"], {}).items()},
            latency_ms=row["latency_ms"],
            ttft_ms=row["ttft_ms"],
            status=row["status"],
            error=row["error"],
            http_status=row["http_status"],
            cache_status=row["cache_status"],
            route=row["route"],
            stream=bool(row["stream"]),
            batch=bool(row["batch"]),
            details=_json(row["details"], {}),
        )


LEDGER_COLUMNS: tuple[str, ...] = (
    "id",
    "ts",
    "request_id",
    "user_id",
    "team",
    "feature",
    "key_id",
    "tags",
    "provider",
    "requested_model",
    "served_model",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_uncached_input",
    "cost_cache_read",
    "cost_cache_write",
    "cost_output",
    "cost_total",
    "counterfactual_cost",
    "savings",
    "latency_ms",
    "ttft_ms",
    "status",
    "error",
    "http_status",
    "cache_status",
    "route",
    "stream",
    "batch",
    "details",
)
"""The columns of a ledger row, in table order: ``to_values`` gives a value for each, in this order."""


def _dumps(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format_usd(value)


def _decimal(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _json(value: object, empty: Any) -> Any:
    if value is None:
        return empty
    if isinstance(value, str):
        return orjson.loads(value)
    return value
