"""Cached responses in PostgreSQL: the semantic cache's entries when its vectors live in pgvector,
so that every gateway sharing the index can also read the answers it points to.

A ``ResponseCache``: one table (``thrifty_semantic_entries``) of (namespace, key) -> expiry, value.
The blocking driver runs in a worker thread; a database that fails answers "miss" and says so in
the log (once a minute), never failing a request.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from thrifty.stores.cache import _Warner
from thrifty.stores.pg_session import PgSession

if TYPE_CHECKING:
    import psycopg

__all__ = ["PgResponseCache", "with_connect_timeout"]

_TABLE = "thrifty_semantic_entries"


def with_connect_timeout(url: str, seconds: int = 2) -> str:
    """``url`` with a ``connect_timeout`` unless it has one: a dead host must not stall a lookup."""
    if "connect_timeout=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"connect_timeout={seconds}"


class PgResponseCache:
    def __init__(self, url: str) -> None:
        self._url = with_connect_timeout(url)
        self._session = PgSession(self._connect)
        self._warn = _Warner()
        self._puts = 0

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        conn = psycopg.connect(self._url, autocommit=True)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} (namespace text NOT NULL, key text NOT NULL, "
            "expires_at double precision NOT NULL, value bytea NOT NULL, PRIMARY KEY (namespace, key))".encode()
        )
        return conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._session.run(sql, params)

    def _get(self, namespace: str, key: str) -> bytes | None:
        rows = self._run(
            f"SELECT value FROM {_TABLE} WHERE namespace = %s AND key = %s AND expires_at > %s",
            (namespace, key, time.time()),
        )
        return bytes(rows[0][0]) if rows else None

    def _put(self, namespace: str, key: str, value: bytes, ttl_s: int) -> None:
        self._run(
            f"INSERT INTO {_TABLE} (namespace, key, expires_at, value) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (namespace, key) DO UPDATE SET expires_at = EXCLUDED.expires_at, value = EXCLUDED.value",
            (namespace, key, time.time() + ttl_s, value),
        )
        self._puts += 1
        if self._puts % 1000 == 0:
            self._run(f"DELETE FROM {_TABLE} WHERE expires_at <= %s", (time.time(),))

    async def get(self, namespace: str, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self._get, namespace, key)
        except Exception as error:  # any database failure is a miss
            self._warn("semantic cache: reading PostgreSQL failed", error)
            return None

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: int) -> None:
        try:
            await asyncio.to_thread(self._put, namespace, key, value, ttl_s)
        except Exception as error:
            self._warn("semantic cache: writing PostgreSQL failed", error)

    async def delete(self, namespace: str, key: str) -> bool:
        rows = await asyncio.to_thread(
            self._run, f"DELETE FROM {_TABLE} WHERE namespace = %s AND key = %s", (namespace, key)
        )
        return bool(rows and rows[0][0])

    def clear(self, namespace: str | None = None) -> int:
        if namespace is None:
            rows = self._run(f"DELETE FROM {_TABLE}")
        else:
            rows = self._run(f"DELETE FROM {_TABLE} WHERE namespace = %s", (namespace,))
        return int(rows[0][0])

    async def close(self) -> None:
        self._session.close()
