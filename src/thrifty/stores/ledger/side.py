"""A table beside the ledger, in its database (SQLite or PostgreSQL), on a connection of its own
opened on first use: for what is rare next to calls (feedback verdicts, alert claims), so the
writer's and the reports' connections are never held up by it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["SideTable"]


class SideTable:
    """``url``: the ledger's (migrated: ``open_ledger`` made the tables)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None

    @property
    def _postgres(self) -> bool:
        return self._url.startswith(("postgresql://", "postgres://"))

    def _query(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """``sql`` written with ``?`` placeholders, for either engine."""
        with self._lock:
            if self._postgres:
                return self._pg_run(sql.replace("?", "%s"), params)
            conn = self._sqlite_conn()
            return [dict(row) for row in conn.execute(sql, params).fetchall()]

    def _sqlite_conn(self) -> sqlite3.Connection:
        if self._sqlite is None:
            conn = sqlite3.connect(
                self._url.removeprefix("sqlite:///"), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=30000")
            conn.row_factory = sqlite3.Row
            self._sqlite = conn
        return self._sqlite

    def _pg_run(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        if self._pg is None or self._pg.closed or self._pg.broken:
            self._pg = psycopg.connect(self._url, autocommit=True, row_factory=dict_row, connect_timeout=10)
        cursor = self._pg.execute(sql.encode(), list(params))
        return list(cursor.fetchall()) if cursor.description is not None else []

    def close(self) -> None:
        with self._lock:
            if self._sqlite is not None:
                self._sqlite.close()
                self._sqlite = None
            if self._pg is not None:
                self._pg.close()
                self._pg = None
