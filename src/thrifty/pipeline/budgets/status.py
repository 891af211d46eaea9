"""Budget status for the CLI, the admin API and the report: spend, reservations in flight, what
remains and when each window resets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from thrifty.core.budgets import Budget, Period
from thrifty.pipeline.budgets.engine import amount_json, line_for
from thrifty.stores.budgets import BudgetStore

__all__ = ["BudgetStatus", "budget_status"]


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    budget: Budget
    subject: str
    period: str
    spent: int
    reserved: int
    resets_at: datetime | None

    @property
    def remaining(self) -> int:
        return max(0, self.budget.limit - self.spent - self.reserved)

    @property
    def utilisation(self) -> Decimal:
        return Decimal(self.spent) / Decimal(self.budget.limit) if self.budget.limit else Decimal(0)

    def as_json(self) -> dict[str, Any]:
        unit = self.budget.unit
        return {
            "id": self.budget.id,
            "scope": self.budget.scope,
            "subject": self.subject,
            "window": self.budget.window.describe(),
            "period": self.period,
            "unit": unit,
            "limit": amount_json(unit, self.budget.limit),
            "spent": amount_json(unit, self.spent),
            "reserved": amount_json(unit, self.reserved),
            "remaining": amount_json(unit, self.remaining),
            "utilisation": float(round(self.utilisation, 4)),
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
            "on_exceed": self.budget.on_exceed,
            "downgrade_to": self.budget.downgrade_to,
            "source": self.budget.source,
        }


async def budget_status(
    store: BudgetStore, budgets: Sequence[Budget], now: datetime | None = None
) -> list[BudgetStatus]:
    """Spend, reservations in flight, what remains and when it resets: for each budget, and for a
    per-subject budget, for each subject with spend in the current window."""
    now = now or datetime.now(UTC)
    wanted: list[tuple[Budget, str, Period]] = []
    for budget in budgets:
        period = budget.window.period(now)
        if budget.scope == "global":
            subjects = ["*"]
        elif budget.value is not None:
            subjects = [budget.value]
        else:
            subjects = await store.subjects(budget.id, period.key)
        wanted += [(budget, subject, period) for subject in subjects]
    lines = [line_for(b, s, p, 0, now) for b, s, p in wanted]
    usages = await store.usage(lines) if lines else []
    out = []
    for (budget, subject, period), usage in zip(wanted, usages, strict=True):
        resets = period.reset
        if resets is None and usage.frees_at is not None:
            resets = datetime.fromtimestamp(usage.frees_at, UTC)
        out.append(BudgetStatus(budget, subject, period.key, usage.spent, usage.reserved, resets))
    return out
