"""Replaying traffic: every item, in order, through a replay runtime; what each call came to."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing import format_usd
from thrifty.replay.runtime import ReplayRuntime
from thrifty.replay.traffic import BadLine, Traffic, TrafficError, TrafficItem

__all__ = ["ReplayRun", "ReplayedCall", "replay_traffic"]


@dataclass(frozen=True, slots=True)
class ReplayedCall:
    item: TrafficItem
    record: LedgerRecord
    """The call's own row."""
    extras: tuple[LedgerRecord, ...] = ()
    """Rows the steps made for it (a classifier's call, an escalated attempt)."""

    @property
    def cost(self) -> Decimal | None:
        """The call's cost with its extra rows; None when any of them has no known price."""
        total = Decimal(0)
        for row in (*self.extras, self.record):
            if row.cost is None:
                return None
            total += row.cost.total
        return total

    @property
    def basis(self) -> str:
        """How the output tokens were known: ``recorded``, ``recounted``, ``estimated``,
        ``assumed``; ``cache`` when a replayed cache answered; ``error`` when nothing was sent."""
        basis = self.record.details.get("replay_usage")
        if isinstance(basis, str):
            return basis
        return "cache" if self.record.cache_status in ("hit", "semantic") else "none"

    def as_json(self) -> dict[str, Any]:
        record, captured = self.record, self.item.call
        cost = self.cost
        return {
            "line": self.item.line,
            "session_id": captured.session,
            "feature": captured.feature,
            "call": captured.label,
            "model": self.item.model,
            "served_model": record.served_model,
            "cost": None if cost is None else format_usd(cost),
            "recorded_cost": None
            if captured.outcome is None or captured.outcome.cost is None
            else format_usd(captured.outcome.cost),
            "output": self.basis,
            "cache_status": record.cache_status,
            "route": record.route,
            "status": record.status,
        }


@dataclass
class ReplayRun:
    config: str
    traffic: Traffic
    calls: list[ReplayedCall] = field(default_factory=list)
    unserved: list[BadLine] = field(default_factory=list)
    seconds: float = 0.0


async def replay_traffic(
    runtime: ReplayRuntime,
    traffic: Traffic,
    config: str,
    *,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReplayRun:
    """``traffic`` through ``runtime`` (started), in order. An item asking for a model the config
    does not serve is reported with its line and skipped (``strict``: fatal)."""
    run = ReplayRun(config, traffic)
    began = time.perf_counter()
    for item in traffic.items:
        if not runtime.serves(item.model):
            message = f"the model {item.model!r} is not served by {config}"
            if strict:
                raise TrafficError(f"{traffic.source}: line {item.line}: {message}")
            run.unserved.append(BadLine(item.line, message))
        else:
            rows = await runtime.run(item)
            if rows:
                run.calls.append(ReplayedCall(item, rows[-1], tuple(rows[:-1])))
        if progress is not None:
            progress(1)
    run.seconds = time.perf_counter() - began
    return run
