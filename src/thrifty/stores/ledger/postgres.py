"""The PostgreSQL ledger: shared by every gateway process of a scale-out deployment."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from thrifty.core.ledger import LEDGER_COLUMNS, LedgerRecord
from thrifty.stores.ledger.base import GroupBy, Latencies, Percentiles, Totals, load_migrations, sql_statements

__all__ = ["PostgresLedger"]

_GROUP_SQL: dict[GroupBy, str] = {
    "model": "COALESCE(served_model, requested_model)",
    "provider": "provider",
    "feature": "feature",
    "user": "user_id",
    "team": "team",
    "key": "key_id",
    "tag": "tag",
    "day": "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "status": "status",
    "cache": "COALESCE(cache_status, '-')",
}

_CASTS = {
    "ts": "::timestamptz",
    "tags": "::jsonb",
    "savings": "::jsonb",
    "details": "::jsonb",
    "cost_uncached_input": "::numeric",
    "cost_cache_read": "::numeric",
    "cost_cache_write": "::numeric",
    "cost_output": "::numeric",
    "cost_total": "::numeric",
    "counterfactual_cost": "::numeric",
}

_INSERT = (
    f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) "
    f"VALUES ({', '.join('%s' + _CASTS.get(c, '') for c in LEDGER_COLUMNS)}) "
    "ON CONFLICT (id) DO NOTHING"
)

# Any constant works; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK = 0x7468726966747901


class PostgresLedger:
    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self._url, autocommit=True, row_factory=dict_row, connect_timeout=10)

    def _live(self) -> psycopg.Connection[dict[str, Any]]:
        """The connection, reopened if the server dropped it (a restart, a failover)."""
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    @property
    def url(self) -> str:
        return self._url

    def migrate(self) -> None:
        with self._lock:
            conn = self._live()
            with conn.transaction():
                self._migrate(conn.cursor())

    @staticmethod
    def _migrate(cur: psycopg.Cursor[dict[str, Any]]) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS thrifty_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
        )
        cur.execute("SELECT version FROM thrifty_migrations")
        done = {row["version"] for row in cur.fetchall()}
        for migration in load_migrations("postgres"):
            if migration.version in done:
                continue
            for statement in sql_statements(migration.sql):
                cur.execute(statement.encode())
            cur.execute(
                "INSERT INTO thrifty_migrations VALUES (%s, %s, %s)",
                (migration.version, migration.name, datetime.now(UTC)),
            )

    def insert_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self._lock:
            conn = self._live()
            with conn.transaction():
                conn.cursor().executemany(_INSERT, rows)

    def totals(self, group_by: GroupBy, since: datetime | None = None, until: datetime | None = None) -> list[Totals]:
        key = _GROUP_SQL[group_by]
        where, params = _bounds(since, until)
        sql = f"""
            SELECT {key} AS key,
                   COUNT(*) AS calls,
                   COUNT(*) FILTER (WHERE status <> 'ok') AS errors,
                   COALESCE(SUM(input_tokens), 0) AS input_tokens,
                   COALESCE(SUM(cache_read_tokens), 0) AS cache_read_tokens,
                   COALESCE(SUM(cache_write_5m_tokens + cache_write_1h_tokens), 0) AS cache_write_tokens,
                   COALESCE(SUM(output_tokens), 0) AS output_tokens,
                   COALESCE(SUM(cost_total), 0) AS cost_usd,
                   COUNT(*) FILTER (WHERE cost_total IS NULL) AS unpriced_calls,
                   SUM(counterfactual_cost) AS counterfactual_usd
            FROM {"ledger CROSS JOIN LATERAL jsonb_array_elements_text(tags) AS tag" if group_by == "tag" else "ledger"}
            {where}
            GROUP BY 1
            ORDER BY 1
        """
        with self._lock:
            rows = self._live().execute(sql.encode(), params).fetchall()
        return [
            Totals(
                key=row["key"],
                calls=int(row["calls"]),
                errors=int(row["errors"]),
                input_tokens=int(row["input_tokens"]),
                cache_read_tokens=int(row["cache_read_tokens"]),
                cache_write_tokens=int(row["cache_write_tokens"]),
                output_tokens=int(row["output_tokens"]),
                cost_usd=Decimal(row["cost_usd"]),
                unpriced_calls=int(row["unpriced_calls"]),
                counterfactual_usd=row["counterfactual_usd"],
            )
            for row in rows
        ]

    def latencies(
        self, group_by: GroupBy, since: datetime | None = None, until: datetime | None = None
    ) -> list[Latencies]:
        where, params = _bounds(since, until)
        fractions = "ARRAY[0.5, 0.95, 0.99]::float8[]"
        sql = f"""
            SELECT {_GROUP_SQL[group_by]} AS key,
                   percentile_cont({fractions}) WITHIN GROUP (ORDER BY latency_ms) AS latency_ms,
                   percentile_cont({fractions}) WITHIN GROUP (ORDER BY ttft_ms) AS ttft_ms
            FROM {"ledger CROSS JOIN LATERAL jsonb_array_elements_text(tags) AS tag" if group_by == "tag" else "ledger"}
            {where}
            GROUP BY 1
            ORDER BY 1 NULLS FIRST
        """
        with self._lock:
            rows = self._live().execute(sql.encode(), params).fetchall()
        return [Latencies(row["key"], _percentiles(row["latency_ms"]), _percentiles(row["ttft_ms"])) for row in rows]

    def records(
        self, since: datetime | None = None, until: datetime | None = None, limit: int = 100
    ) -> list[LedgerRecord]:
        where, params = _bounds(since, until)
        with self._lock:
            rows = (
                self._live()
                .execute(f"SELECT * FROM ledger {where} ORDER BY ts DESC, id LIMIT %s".encode(), [*params, limit])
                .fetchall()
            )
        return [LedgerRecord.from_row(row) for row in rows]

    def savings(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, Decimal]:
        where, params = _bounds(since, until)
        sql = f"""
            SELECT saved.key AS strategy, SUM(saved.value::numeric) AS total
            FROM ledger, jsonb_each_text(ledger.savings) AS saved {where}
            GROUP BY saved.key ORDER BY saved.key
        """
        with self._lock:
            rows = self._live().execute(sql.encode(), params).fetchall()
        return {row["strategy"]: Decimal(row["total"]) for row in rows}

    def count(self) -> int:
        with self._lock:
            row = self._live().execute("SELECT COUNT(*) AS n FROM ledger").fetchone()
        return int(row["n"]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _percentiles(values: list[float] | None) -> Percentiles | None:
    return None if values is None else Percentiles(*values)


def _bounds(since: datetime | None, until: datetime | None) -> tuple[str, list[datetime]]:
    clauses, params = [], []
    for bound, op in ((since, ">="), (until, "<")):
        if bound is not None:
            if bound.tzinfo is None:
                raise ValueError("report bounds must be timezone-aware")
            clauses.append(f"ts {op} %s")
            params.append(bound)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
