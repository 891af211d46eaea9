"""The ledger record: one row per model call, with everything needed to explain its cost."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from thrifty.core.pricing.rates import Cost, format_usd
from thrifty.core.usage import Usage

__all__ = ["LEDGER_COLUMNS", "LedgerRecord", "new_record_id"]


def new_record_id() -> str:
    return uuid.uuid4().hex


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
        if self.ts.tzinfo is None:
            raise ValueError("ledger timestamps must be timezone-aware UTC")
        if self.ts.utcoffset() != UTC.utcoffset(None):
            object.__setattr__(self, "ts", self.ts.astimezone(UTC))

    def to_row(self) -> dict[str, Any]:
        """A flat row: plain JSON-able values, money as decimal strings (exact), time as ISO 8601."""
        cost = self.cost
        return {
            "id": self.id,
            "ts": self.ts.isoformat(timespec="microseconds"),
            "request_id": self.request_id,
            "user_id": self.user,
            "team": self.team,
            "feature": self.feature,
            "key_id": self.key_id,
            "tags": json.dumps(list(self.tags)),
            "provider": self.provider,
            "requested_model": self.requested_model,
            "served_model": self.served_model,
            "input_tokens": self.usage.input_tokens,
            "cache_read_tokens": self.usage.cache_read_tokens,
            "cache_write_5m_tokens": self.usage.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.usage.cache_write_1h_tokens,
            "output_tokens": self.usage.output_tokens,
            "reasoning_tokens": self.usage.reasoning_tokens,
            "cost_uncached_input": _money(cost.uncached_input if cost else None),
            "cost_cache_read": _money(cost.cache_read if cost else None),
            "cost_cache_write": _money(cost.cache_write if cost else None),
            "cost_output": _money(cost.output if cost else None),
            "cost_total": _money(cost.total if cost else None),
            "counterfactual_cost": _money(self.counterfactual_cost),
            "savings": json.dumps({k: format_usd(v) for k, v in self.savings.items()}, sort_keys=True),
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "status": self.status,
            "error": self.error,
            "http_status": self.http_status,
            "cache_status": self.cache_status,
            "route": self.route,
            "stream": self.stream,
            "batch": self.batch,
            "details": json.dumps(self.details, sort_keys=True, default=str),
        }

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
"""The columns of a ledger row, in table order (``to_row`` produces exactly these keys)."""


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format_usd(value)


def _decimal(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _json(value: object, empty: Any) -> Any:
    if value is None:
        return empty
    if isinstance(value, str):
        return json.loads(value)
    return value
