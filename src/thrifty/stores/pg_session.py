"""One autocommit PostgreSQL connection shared by a store's threads: opened on first use, and
opened again once when a statement finds it dropped (a restarted server), so a store recovers by
itself instead of failing every call until the process restarts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

__all__ = ["PgSession"]


class PgSession:
    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query, or ``[(rowcount,)]`` for a statement that returns none."""
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                try:
                    cursor = self._conn.execute(sql.encode(), params)
                    return list(cursor.fetchall()) if cursor.description is not None else [(cursor.rowcount,)]
                except psycopg.OperationalError:
                    self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
