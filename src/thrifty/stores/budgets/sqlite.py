"""The SQLite budget store: one file, for the processes of one machine. Every operation is one
``BEGIN IMMEDIATE`` transaction, so a check and its reservation are one step even when several
processes share the file. Reservations belong to an owner (a process) whose lease must be renewed:
those of a process that died lapse when its lease does."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from thrifty.stores.budgets.base import (
    SEP,
    Line,
    LineUsage,
    RateLine,
    RateRefusal,
    Refusal,
    StoreUnavailable,
    rate_wait,
    rolling_sum,
)

__all__ = ["SQLiteBudgetStore"]

log = logging.getLogger("thrifty.budgets")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_defs (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
-- part 0: the reservations in flight (and, for a calendar window, the spend); a rolling window
-- keeps its spend in one row per bucket (part = the bucket's number).
CREATE TABLE IF NOT EXISTS budget_counters (
    line TEXT NOT NULL, part INTEGER NOT NULL,
    spent INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL,
    PRIMARY KEY (line, part)
) WITHOUT ROWID;
-- No index on owner: a write per reservation saved; only a dead owner's purge scans the table.
CREATE TABLE IF NOT EXISTS budget_reservations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, lines TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budget_owners (owner TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS budget_owners_expiry ON budget_owners (expires_at);
CREATE TABLE IF NOT EXISTS budget_alerts (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rate_buckets (
    line TEXT NOT NULL, part INTEGER NOT NULL, amount INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (line, part)
) WITHOUT ROWID;
"""


class SQLiteBudgetStore:
    def __init__(self, path: str | Path, *, lease_s: float = 15.0, owner: str | None = None) -> None:
        self._path = str(path)
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._lease = lease_s
        self._owner = owner or f"{secrets.token_hex(6)}"
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self._path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        # Checkpoints (and their fsyncs) are run by ``heartbeat`` in a thread, off the request's path.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        with self._lock:
            self._conn.executescript(_SCHEMA)
        self._lease_until = 0.0
        self._checkpointing = threading.Lock()

    @property
    def url(self) -> str:
        return f"sqlite:///{self._path}"

    @property
    def owner(self) -> str:
        return self._owner

    # -- one transaction -----------------------------------------------------------------------

    def _transaction(self, work: Any) -> Any:
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise StoreUnavailable(f"budget store {self._path}: {error}") from None
            try:
                result = work(conn, time.time())
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    # -- reservations ----------------------------------------------------------------------------

    def _check(self, conn: sqlite3.Connection, lines: Sequence[Line], now: float) -> Refusal | list[tuple[Line, int]]:
        now_ms = int(now * 1000)
        stored = []
        marks = ", ".join("?" * len(lines))
        found = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                f"SELECT line, spent, reserved FROM budget_counters WHERE part = 0 AND line IN ({marks})",
                [line.key for line in lines],
            )
        }
        for index, line in enumerate(lines):
            spent, reserved = found.get(line.key, (0, 0))
            frees_at = None
            bucket = 0
            if line.rolling_ms:
                spent, _ = self._rolling(conn, line, now_ms, detail=False)
                bucket = now_ms // line.bucket_ms
            if spent + reserved + line.amount > line.limit:
                if line.rolling_ms:
                    spent, frees_at = self._rolling(conn, line, now_ms)
                retry = None if frees_at is None else max(0.0, frees_at - now)
                return Refusal(index, spent, reserved, retry)
            stored.append((line, bucket))
        return stored

    def reserve_sync(self, reservation: str, lines: Sequence[Line]) -> Refusal | None:
        def work(conn: sqlite3.Connection, now: float) -> Refusal | None:
            stored = self._check(conn, lines, now)
            if isinstance(stored, Refusal) and self._purge_dead(conn, now):
                stored = self._check(conn, lines, now)  # dead processes held some of it: look again
            if isinstance(stored, Refusal):
                return stored
            for line, _bucket in stored:
                expires = now + line.ttl_s
                conn.execute(
                    "INSERT INTO budget_counters (line, part, spent, reserved, expires_at) VALUES (?, 0, 0, ?, ?) "
                    "ON CONFLICT (line, part) DO UPDATE SET reserved = reserved + excluded.reserved, "
                    "expires_at = MAX(expires_at, excluded.expires_at)",
                    (line.key, line.amount, expires),
                )
            record = orjson.dumps([[line.key, line.amount, bucket, line.ttl_s] for line, bucket in stored]).decode()
            conn.execute(
                "INSERT INTO budget_reservations (id, owner, lines) VALUES (?, ?, ?)",
                (reservation, self._owner, record),
            )
            if self._lease_until - now < self._lease / 2:
                self._renew(conn, now)  # (after a pause past the lease, the lease is in the past: renewed)
            return None

        result: Refusal | None = self._transaction(work)
        return result

    def _rolling(
        self, conn: sqlite3.Connection, line: Line, now_ms: int, detail: bool = True
    ) -> tuple[int, float | None]:
        """The spend still in a rolling window (and, with ``detail``, when its oldest leaves it).
        Buckets that left the window are deleted by ``heartbeat`` once they expire."""
        oldest = now_ms // line.bucket_ms - -(-line.rolling_ms // line.bucket_ms)
        if not detail:
            row = conn.execute(
                "SELECT COALESCE(SUM(spent), 0) FROM budget_counters WHERE line = ? AND part >= ?", (line.key, oldest)
            ).fetchone()
            return int(row[0]), None
        rows = conn.execute("SELECT part, spent FROM budget_counters WHERE line = ? AND part >= ?", (line.key, oldest))
        total, _, frees_at = rolling_sum(dict(rows), now_ms, line)
        return total, frees_at

    def settle_sync(self, reservation: str, lines: Sequence[Line]) -> list[int]:
        def work(conn: sqlite3.Connection, now: float) -> list[int]:
            held: dict[str, tuple[int, int]] = {}
            if any(line.rolling_ms for line in lines) or not all(line.held for line in lines):
                row = conn.execute(
                    "DELETE FROM budget_reservations WHERE id = ? RETURNING lines", (reservation,)
                ).fetchone()
                if row is not None:
                    held = {key: (amount, bucket) for key, amount, bucket, *_ in orjson.loads(row[0])}
            elif conn.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation,)).rowcount:
                # The caller says what each line held: no need to read the reservation back.
                held = {line.key: (line.held, 0) for line in lines}
            now_ms = int(now * 1000)
            after = []
            for line in lines:
                expires = now + line.ttl_s
                reserved, bucket = held.pop(line.key, (0, 0))
                if not line.rolling_ms:
                    row = conn.execute(
                        "UPDATE budget_counters SET reserved = MAX(0, reserved - ?), spent = spent + ?, "
                        "expires_at = MAX(expires_at, ?) WHERE line = ? AND part = 0 RETURNING spent",
                        (reserved, line.amount, expires, line.key),
                    ).fetchone()
                    if row is None:
                        conn.execute(
                            "INSERT INTO budget_counters (line, part, spent, reserved, expires_at) "
                            "VALUES (?, 0, ?, 0, ?)",
                            (line.key, line.amount, expires),
                        )
                    after.append(int(row[0]) if row is not None else line.amount)
                    continue
                if reserved:
                    conn.execute(
                        "UPDATE budget_counters SET reserved = MAX(0, reserved - ?) WHERE line = ? AND part = 0",
                        (reserved, line.key),
                    )
                bucket = bucket or now_ms // line.bucket_ms
                conn.execute(
                    "INSERT INTO budget_counters (line, part, spent, reserved, expires_at) VALUES (?, ?, ?, 0, ?) "
                    "ON CONFLICT (line, part) DO UPDATE SET spent = spent + excluded.spent, "
                    "expires_at = MAX(expires_at, excluded.expires_at)",
                    (line.key, bucket, line.amount, expires),
                )
                after.append(self._rolling(conn, line, now_ms, detail=False)[0])
            if held:  # lines reserved but not settled (none, normally): release them
                conn.executemany(
                    "UPDATE budget_counters SET reserved = MAX(0, reserved - ?) WHERE line = ? AND part = 0",
                    [(amount, key) for key, (amount, _) in held.items()],
                )
            return after

        result: list[int] = self._transaction(work)
        return result

    def release_sync(self, reservation: str) -> None:
        self._transaction(lambda conn, now: self._take(conn, reservation))

    def _take(self, conn: sqlite3.Connection, reservation: str) -> list[list[Any]]:
        """Remove a reservation and take its amounts off the lines' reserved totals."""
        row = conn.execute("DELETE FROM budget_reservations WHERE id = ? RETURNING lines", (reservation,)).fetchone()
        if row is None:
            return []
        held: list[list[Any]] = orjson.loads(row[0])
        conn.executemany(
            "UPDATE budget_counters SET reserved = MAX(0, reserved - ?) WHERE line = ? AND part = 0",
            [(amount, key) for key, amount, *_ in held],
        )
        return held

    def _purge_dead(self, conn: sqlite3.Connection, now: float) -> bool:
        """Release the reservations of owners whose lease lapsed; True when there were any."""
        dead = [r[0] for r in conn.execute("SELECT owner FROM budget_owners WHERE expires_at < ? LIMIT 16", (now,))]
        for owner in dead:
            ids = [r[0] for r in conn.execute("SELECT id FROM budget_reservations WHERE owner = ?", (owner,))]
            for reservation in ids:
                self._take(conn, reservation)
            conn.execute("DELETE FROM budget_owners WHERE owner = ?", (owner,))
        return bool(dead)

    def _renew(self, conn: sqlite3.Connection, now: float) -> None:
        self._lease_until = now + self._lease
        conn.execute(
            "INSERT INTO budget_owners (owner, expires_at) VALUES (?, ?) "
            "ON CONFLICT (owner) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
            (self._owner, now + self._lease),
        )

    def heartbeat_sync(self) -> None:
        def work(conn: sqlite3.Connection, now: float) -> None:
            self._renew(conn, now)
            self._purge_dead(conn, now)
            conn.execute("DELETE FROM budget_counters WHERE expires_at < ? AND reserved = 0", (now,))
            conn.execute("DELETE FROM rate_buckets WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM budget_alerts WHERE expires_at < ?", (now,))

        self._transaction(work)

    def checkpoint_sync(self) -> None:
        """Move the WAL into the database file (with its fsyncs), on a connection of its own."""
        if self._path == ":memory:" or not self._checkpointing.acquire(blocking=False):
            return
        try:
            conn = sqlite3.connect(self._path, timeout=10.0, isolation_level=None)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                conn.close()
        except sqlite3.Error as error:
            log.warning("budgets: checkpointing %s failed: %s", self._path, error)
        finally:
            self._checkpointing.release()

    def release_all_sync(self) -> None:
        def work(conn: sqlite3.Connection, now: float) -> None:
            ids = [r[0] for r in conn.execute("SELECT id FROM budget_reservations WHERE owner = ?", (self._owner,))]
            for reservation in ids:
                self._take(conn, reservation)
            conn.execute("DELETE FROM budget_owners WHERE owner = ?", (self._owner,))

        self._transaction(work)

    def usage_sync(self, lines: Sequence[Line]) -> list[LineUsage]:
        def work(conn: sqlite3.Connection, now: float) -> list[LineUsage]:
            out = []
            for line in lines:
                row = conn.execute(
                    "SELECT spent, reserved FROM budget_counters WHERE line = ? AND part = 0", (line.key,)
                ).fetchone()
                spent, reserved = (int(row[0]), int(row[1])) if row else (0, 0)
                frees_at = None
                if line.rolling_ms:
                    spent, frees_at = self._rolling(conn, line, int(now * 1000))
                out.append(LineUsage(spent, reserved, frees_at))
            return out

        result: list[LineUsage] = self._transaction(work)
        return result

    def subjects_sync(self, budget_id: str, period: str) -> list[str]:
        prefix = budget_id + SEP
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT line FROM budget_counters WHERE line > ? AND line < ?", (prefix, budget_id + "\x20")
            ).fetchall()
        found = []
        for (line,) in rows:
            _, subject, line_period = line.split(SEP)
            if line_period == period:
                found.append(subject)
        return sorted(found)

    # -- rate limits -------------------------------------------------------------------------

    def admit_sync(self, lines: Sequence[RateLine]) -> RateRefusal | None:
        def work(conn: sqlite3.Connection, now: float) -> RateRefusal | None:
            now_ms = int(now * 1000)
            for index, line in enumerate(lines):
                if line.amount > line.limit:
                    return RateRefusal(index, 0, None)
                oldest = now_ms // line.bucket_ms - -(-line.window_ms // line.bucket_ms)
                row = conn.execute(
                    "SELECT COALESCE(SUM(amount), 0) FROM rate_buckets WHERE line = ? AND part >= ?", (line.key, oldest)
                ).fetchone()
                used = int(row[0])
                if used + line.amount > line.limit:
                    rows = conn.execute(
                        "SELECT part, amount FROM rate_buckets WHERE line = ? AND part >= ?", (line.key, oldest)
                    )
                    return RateRefusal(index, used, rate_wait(dict(rows), now_ms, line, used))
            for line in lines:
                current = now_ms // line.bucket_ms
                conn.execute(
                    "INSERT INTO rate_buckets (line, part, amount, expires_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (line, part) DO UPDATE SET amount = amount + excluded.amount",
                    (line.key, current, line.amount, now + (line.window_ms + 2 * line.bucket_ms) / 1000),
                )
            return None

        result: RateRefusal | None = self._transaction(work)
        return result

    # -- alerts and definitions ----------------------------------------------------------------

    def claim_alert_sync(self, key: str, ttl_s: int) -> bool:
        def work(conn: sqlite3.Connection, now: float) -> bool:
            conn.execute("DELETE FROM budget_alerts WHERE key = ? AND expires_at < ?", (key, now))
            row = conn.execute(
                "INSERT OR IGNORE INTO budget_alerts (key, expires_at) VALUES (?, ?) RETURNING key", (key, now + ttl_s)
            ).fetchone()
            return row is not None

        result: bool = self._transaction(work)
        return result

    def definitions_sync(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT doc FROM budget_defs ORDER BY id").fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def put_definition_sync(self, budget_id: str, doc: dict[str, Any], *, only_new: bool = False) -> bool:
        verb = "INSERT OR IGNORE" if only_new else "INSERT OR REPLACE"
        with self._lock:
            cursor = self._conn.execute(
                f"{verb} INTO budget_defs (id, doc) VALUES (?, ?)", (budget_id, orjson.dumps(doc).decode())
            )
            return cursor.rowcount > 0

    def delete_definition_sync(self, budget_id: str) -> bool:
        with self._lock:
            return self._conn.execute("DELETE FROM budget_defs WHERE id = ?", (budget_id,)).rowcount > 0

    # -- the async protocol: SQLite answers in microseconds, so the calls run inline --------------

    async def reserve(self, reservation: str, lines: Sequence[Line]) -> Refusal | None:
        return self.reserve_sync(reservation, lines)

    async def settle(self, reservation: str, lines: Sequence[Line]) -> list[int]:
        return self.settle_sync(reservation, lines)

    async def release(self, reservation: str) -> None:
        self.release_sync(reservation)

    async def usage(self, lines: Sequence[Line]) -> list[LineUsage]:
        return self.usage_sync(lines)

    async def subjects(self, budget_id: str, period: str) -> list[str]:
        return self.subjects_sync(budget_id, period)

    async def heartbeat(self) -> None:
        self.heartbeat_sync()
        await asyncio.to_thread(self.checkpoint_sync)

    async def release_all(self) -> None:
        self.release_all_sync()

    async def admit(self, lines: Sequence[RateLine]) -> RateRefusal | None:
        return self.admit_sync(lines)

    async def claim_alert(self, key: str, ttl_s: int) -> bool:
        return self.claim_alert_sync(key, ttl_s)

    async def definitions(self) -> list[dict[str, Any]]:
        return self.definitions_sync()

    async def put_definition(self, budget_id: str, doc: dict[str, Any], *, only_new: bool = False) -> bool:
        return self.put_definition_sync(budget_id, doc, only_new=only_new)

    async def delete_definition(self, budget_id: str) -> bool:
        return self.delete_definition_sync(budget_id)

    async def ping(self) -> None:
        with self._lock:
            self._conn.execute("SELECT 1")

    async def close(self) -> None:
        with self._lock:
            self._conn.close()
