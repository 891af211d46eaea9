"""Batch state, in SQLite (the ledger's file by default): uploaded files, batches (one JSON
document each, rewritten before every provider call so a restart resumes from it) and the lease
that lets one process at a time submit and poll."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from thrifty.errors import StoreUnavailable

__all__ = ["BatchStore", "StoredFile"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_files (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at INTEGER NOT NULL, open INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batch_jobs_tenant ON batch_jobs (tenant, created_at);
CREATE INDEX IF NOT EXISTS batch_jobs_open ON batch_jobs (open);
CREATE TABLE IF NOT EXISTS batch_lease (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    tenant: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    path: str


class BatchStore:
    """Every method is one short transaction; call them off the event loop (``asyncio.to_thread``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise StoreUnavailable(f"batch store {self.path}: {error}") from error
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- files -----------------------------------------------------------------------------------

    def add_file(self, stored: StoredFile) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO batch_files (id, tenant, filename, purpose, bytes, created_at, path) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    stored.id,
                    stored.tenant,
                    stored.filename,
                    stored.purpose,
                    stored.bytes,
                    stored.created_at,
                    stored.path,
                ),
            )

    def add_file_once(self, stored: StoredFile) -> None:
        """``add_file``, unless a file of that id is there already (an output assembled again)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO batch_files (id, tenant, filename, purpose, bytes, created_at, path) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    stored.id,
                    stored.tenant,
                    stored.filename,
                    stored.purpose,
                    stored.bytes,
                    stored.created_at,
                    stored.path,
                ),
            )

    def file(self, file_id: str, tenant: str) -> StoredFile | None:
        """The file, if it is ``tenant``'s (another tenant's file is not found, as if it did not exist)."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT id, tenant, filename, purpose, bytes, created_at, path FROM batch_files "
                "WHERE id = ? AND tenant = ?",
                (file_id, tenant),
            ).fetchone()
        return StoredFile(*row) if row is not None else None

    # -- batches ---------------------------------------------------------------------------------

    def put_job(self, job_id: str, tenant: str, created_at: int, doc: dict[str, Any], *, open_: bool) -> None:
        raw = orjson.dumps(doc).decode()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO batch_jobs (id, tenant, created_at, open, doc) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET open = excluded.open, doc = excluded.doc",
                (job_id, tenant, created_at, int(open_), raw),
            )

    def job(self, job_id: str, tenant: str | None) -> dict[str, Any] | None:
        """The batch's document; with ``tenant``, only if it is that tenant's."""
        with self._tx() as conn:
            if tenant is None:
                row = conn.execute("SELECT doc FROM batch_jobs WHERE id = ?", (job_id,)).fetchone()
            else:
                row = conn.execute(
                    "SELECT doc FROM batch_jobs WHERE id = ? AND tenant = ?", (job_id, tenant)
                ).fetchone()
        return orjson.loads(row[0]) if row is not None else None

    def jobs(self, tenant: str, limit: int, after: str | None) -> list[dict[str, Any]]:
        """``tenant``'s batches, newest first; ``after``: those older than that batch."""
        with self._tx() as conn:
            if after is None:
                rows = conn.execute(
                    "SELECT doc FROM batch_jobs WHERE tenant = ? ORDER BY created_at DESC, id DESC LIMIT ?",
                    (tenant, limit),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT doc FROM batch_jobs WHERE tenant = ? AND (created_at, id) < "
                    "(SELECT created_at, id FROM batch_jobs WHERE id = ?) ORDER BY created_at DESC, id DESC LIMIT ?",
                    (tenant, after, limit),
                ).fetchall()
        return [orjson.loads(row[0]) for row in rows]

    def open_jobs(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute("SELECT doc FROM batch_jobs WHERE open = 1 ORDER BY created_at").fetchall()
        return [orjson.loads(row[0]) for row in rows]

    # -- the lease -------------------------------------------------------------------------------

    def take_lease(self, owner: str, lease_s: float, name: str = "poller") -> bool:
        """True when ``owner`` holds the lease now (taken, renewed, or taken over from a lapsed one)."""
        now = time.time()
        with self._tx() as conn:
            row = conn.execute("SELECT owner, expires_at FROM batch_lease WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return False
            conn.execute(
                "INSERT INTO batch_lease (name, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
                (name, owner, now + lease_s),
            )
        return True

    def drop_lease(self, owner: str, name: str = "poller") -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM batch_lease WHERE name = ? AND owner = ?", (name, owner))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
