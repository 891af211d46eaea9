"""The ledger's cost by UTC day and model family, for ``thrifty reconcile``: summed exactly (decimal
text in SQLite is added in Python, PostgreSQL's numeric in SQL). Budget and spend alerts, which
cost nothing and name no model, are left out."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal

from thrifty.core.reconcile import Key, family
from thrifty.stores.ledger.side import SideTable

__all__ = ["DailyCosts"]

_EVENTS = ("budget_alert", "spend_alert")


class DailyCosts(SideTable):
    def by_day_and_model(
        self, since: datetime, until: datetime, providers: Collection[str] | None = None
    ) -> dict[Key, Decimal]:
        """``providers``: the ledger's provider names to count (None: all)."""
        model = "COALESCE(served_model, requested_model)"
        if self._postgres:
            day = "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            sql = f"SELECT {day} AS day, {model} AS model, provider, SUM(cost_total) AS cost FROM ledger"
            bounds: list[object] = [since, until]
        else:
            sql = f"SELECT substr(ts, 1, 10) AS day, {model} AS model, provider, cost_total AS cost FROM ledger"
            bounds = [
                since.astimezone(UTC).isoformat(timespec="microseconds"),
                until.astimezone(UTC).isoformat(timespec="microseconds"),
            ]
        sql += " WHERE ts >= ? AND ts < ? AND cost_total IS NOT NULL AND status NOT IN (?, ?)"
        if self._postgres:
            sql += " GROUP BY 1, 2, 3"
        out: dict[Key, Decimal] = {}
        for row in self._query(sql, [*bounds, *_EVENTS]):
            if providers is not None and row["provider"] not in providers:
                continue
            key = (str(row["day"]), family(str(row["model"])))
            out[key] = out.get(key, Decimal(0)) + Decimal(str(row["cost"]))
        return out
