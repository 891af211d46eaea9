"""Feedback verdicts beside the ledger, in the same database (SQLite or PostgreSQL), and the
lookup of a request's ledger rows they need. Rare next to calls: a connection of its own,
opened on first use, so the writer's and the reports' are never held up by it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from thrifty.core.feedback import Label, Verdict
from thrifty.core.ledger import LedgerRecord
from thrifty.stores.ledger.side import SideTable

__all__ = ["FeedbackRow", "FeedbackStore"]

_COLUMNS = (
    "request_id",
    "ts",
    "verdict",
    "tenant",
    "record_id",
    "cache_status",
    "namespace",
    "similarity",
    "route",
    "served_model",
    "evicted",
    "note",
)


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    request_id: str
    ts: datetime
    verdict: Verdict
    tenant: str | None
    record_id: str
    cache_status: str | None
    namespace: str | None
    similarity: float | None
    route: str | None
    served_model: str | None
    evicted: tuple[str, ...]
    note: str | None

    def values(self) -> tuple[Any, ...]:
        return (
            self.request_id,
            self.ts.astimezone(UTC).isoformat(timespec="microseconds"),
            self.verdict,
            self.tenant,
            self.record_id,
            self.cache_status,
            self.namespace,
            self.similarity,
            self.route,
            self.served_model,
            orjson.dumps(list(self.evicted)).decode(),
            self.note,
        )


class FeedbackStore(SideTable):
    """``url``: the ledger's (migrated: ``open_ledger`` made the tables)."""

    def rows_of(self, request_id: str) -> list[LedgerRecord]:
        """Every ledger row of one request (its answer, and what thrifty called for it)."""
        rows = self._query("SELECT * FROM ledger WHERE request_id = ? ORDER BY ts, id", (request_id,))
        return [LedgerRecord.from_row(row) for row in rows]

    def put(self, row: FeedbackRow) -> None:
        """One verdict a request: a second replaces the first."""
        columns = ", ".join(_COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "request_id")
        values = row.values()
        if self._postgres:
            marks = ", ".join(
                "?::timestamptz" if c == "ts" else "?::jsonb" if c == "evicted" else "?" for c in _COLUMNS
            )
        self._query(
            f"INSERT INTO feedback ({columns}) VALUES ({marks}) ON CONFLICT (request_id) DO UPDATE SET {updates}",
            values,
        )

    def get(self, request_id: str) -> FeedbackRow | None:
        rows = self._query("SELECT * FROM feedback WHERE request_id = ?", (request_id,))
        return _feedback_row(rows[0]) if rows else None

    def labels(self, since: datetime | None = None) -> list[Label]:
        """The judged semantic hits, for ``thrifty cache calibrate --from-feedback``."""
        sql = (
            "SELECT namespace, similarity, verdict FROM feedback"
            " WHERE cache_status = 'semantic' AND similarity IS NOT NULL"
        )
        params: list[Any] = []
        if since is not None:
            sql += " AND ts >= ?"
            params.append(since.astimezone(UTC).isoformat(timespec="microseconds"))
        rows = self._query(sql + " ORDER BY ts", params)
        return [
            Label(row["namespace"] or "anonymous", float(row["similarity"]), row["verdict"] == "wrong") for row in rows
        ]


def _feedback_row(row: dict[str, Any]) -> FeedbackRow:
    ts = row["ts"]
    evicted = row["evicted"]
    return FeedbackRow(
        request_id=row["request_id"],
        ts=ts if isinstance(ts, datetime) else datetime.fromisoformat(ts),
        verdict="wrong" if row["verdict"] == "wrong" else "right",
        tenant=row["tenant"],
        record_id=row["record_id"],
        cache_status=row["cache_status"],
        namespace=row["namespace"],
        similarity=row["similarity"],
        route=row["route"],
        served_model=row["served_model"],
        evicted=tuple(evicted if isinstance(evicted, list) else orjson.loads(evicted)),
        note=row["note"],
    )
