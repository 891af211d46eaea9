"""The SQLite ledger: the embedded default, one file, safe for several processes (WAL)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from thrifty.core.ledger import LEDGER_COLUMNS, LedgerRecord
from thrifty.core.pricing.rates import format_usd
from thrifty.stores.ledger.base import GroupBy, Latencies, Totals, load_migrations, percentiles, sql_statements

__all__ = ["SQLiteLedger"]

_GROUP_SQL: dict[GroupBy, str] = {
    "model": "COALESCE(served_model, requested_model)",
    "provider": "provider",
    "feature": "feature",
    "user": "user_id",
    "team": "team",
    "key": "key_id",
    "tag": "tag.value",
    "day": "substr(ts, 1, 10)",
    "status": "status",
    "cache": "COALESCE(cache_status, '-')",
}

_INSERT = (
    f"INSERT OR IGNORE INTO ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({', '.join(':' + c for c in LEDGER_COLUMNS)})"
)


class _DecimalSum:
    """SUM over decimal text, exactly (SQLite's own SUM would go through floats)."""

    def __init__(self) -> None:
        self.total = Decimal(0)
        self.seen = False

    def step(self, value: object) -> None:
        if value is not None:
            self.total += Decimal(str(value))
            self.seen = True

    def finalize(self) -> str | None:
        return format_usd(self.total) if self.seen else None


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    # Several processes (or threads) opening a new file at once race to switch it to WAL, and
    # SQLite answers that race "database is locked" at once, without waiting on the busy timeout.
    _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.create_aggregate("decimal_sum", 1, _DecimalSum)  # type: ignore[arg-type]  # typeshed wants int values
    conn.row_factory = sqlite3.Row
    return conn


def _retry_locked(step: Callable[[], object], attempts: int = 8) -> None:
    """``step``, again after a pause while SQLite says "database is locked" (about 6 s in all):
    for the steps its busy timeout does not cover, which only race with other openers."""
    for attempt in range(attempts):
        try:
            step()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * 2**attempt, 2.0))


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("report bounds must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class SQLiteLedger:
    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(self._path)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"sqlite:///{self._path}"

    def migrate(self) -> None:
        # Processes starting together race to create the file and switch it to WAL; SQLite can
        # answer "database is locked" at once for those steps (the busy timeout does not cover
        # every lock upgrade). The migration is idempotent, so a few retries settle it.
        _retry_locked(self._migrate)

    def _migrate(self) -> None:
        with self._lock:
            conn = self._conn
            conn.execute(
                "CREATE TABLE IF NOT EXISTS thrifty_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            for migration in load_migrations("sqlite"):
                conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then skip
                try:
                    done = conn.execute(
                        "SELECT 1 FROM thrifty_migrations WHERE version = ?", (migration.version,)
                    ).fetchone()
                    if done is None:
                        for statement in sql_statements(migration.sql):
                            conn.execute(statement)
                        conn.execute(
                            "INSERT INTO thrifty_migrations VALUES (?, ?, ?)",
                            (migration.version, migration.name, datetime.now(UTC).isoformat()),
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

    def insert_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def totals(self, group_by: GroupBy, since: datetime | None = None, until: datetime | None = None) -> list[Totals]:
        key = _GROUP_SQL[group_by]
        where, params = _bounds(since, until)
        sql = f"""
            SELECT {key} AS key,
                   COUNT(*) AS calls,
                   SUM(status != 'ok') AS errors,
                   SUM(input_tokens) AS input_tokens,
                   SUM(cache_read_tokens) AS cache_read_tokens,
                   SUM(cache_write_5m_tokens + cache_write_1h_tokens) AS cache_write_tokens,
                   SUM(output_tokens) AS output_tokens,
                   decimal_sum(cost_total) AS cost_usd,
                   SUM(cost_total IS NULL) AS unpriced_calls,
                   decimal_sum(counterfactual_cost) AS counterfactual_usd
            FROM {"ledger, json_each(ledger.tags) AS tag" if group_by == "tag" else "ledger"} {where}
            GROUP BY 1
            ORDER BY 1
        """
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [
            Totals(
                key=row["key"],
                calls=row["calls"],
                errors=row["errors"],
                input_tokens=row["input_tokens"],
                cache_read_tokens=row["cache_read_tokens"],
                cache_write_tokens=row["cache_write_tokens"],
                output_tokens=row["output_tokens"],
                cost_usd=Decimal(row["cost_usd"] or 0),
                unpriced_calls=row["unpriced_calls"],
                counterfactual_usd=None if row["counterfactual_usd"] is None else Decimal(row["counterfactual_usd"]),
            )
            for row in rows
        ]

    def latencies(
        self, group_by: GroupBy, since: datetime | None = None, until: datetime | None = None
    ) -> list[Latencies]:
        # SQLite has no percentile function: the group's values, and the same interpolation as
        # PostgreSQL's percentile_cont, in Python.
        where, params = _bounds(since, until)
        source = "ledger, json_each(ledger.tags) AS tag" if group_by == "tag" else "ledger"
        sql = f"SELECT {_GROUP_SQL[group_by]} AS key, latency_ms, ttft_ms FROM {source} {where}"
        groups: dict[str | None, tuple[list[float], list[float]]] = {}
        with self._lock:
            for key, latency, ttft in self._conn.execute(sql, params):
                latencies, ttfts = groups.setdefault(key, ([], []))
                if latency is not None:
                    latencies.append(float(latency))
                if ttft is not None:
                    ttfts.append(float(ttft))
        ordered = sorted(groups.items(), key=lambda item: (item[0] is not None, item[0] or ""))
        return [Latencies(key, percentiles(lat), percentiles(ttft)) for key, (lat, ttft) in ordered]

    def records(
        self, since: datetime | None = None, until: datetime | None = None, limit: int = 100
    ) -> list[LedgerRecord]:
        where, params = _bounds(since, until)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT * FROM ledger {where} ORDER BY ts DESC, id LIMIT ?", [*params, limit]
            ).fetchall()
        return [LedgerRecord.from_row(dict(row)) for row in rows]

    def savings(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, Decimal]:
        where, params = _bounds(since, until)
        sql = f"""
            SELECT saved.key AS strategy, decimal_sum(saved.value) AS total
            FROM ledger, json_each(ledger.savings) AS saved {where}
            GROUP BY saved.key ORDER BY saved.key
        """
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return {row["strategy"]: Decimal(row["total"]) for row in rows if row["total"] is not None}

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _bounds(since: datetime | None, until: datetime | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("ts >= ?")
        params.append(_iso(since))
    if until is not None:
        clauses.append("ts < ?")
        params.append(_iso(until))
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
