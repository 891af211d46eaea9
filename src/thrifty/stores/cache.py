"""Where cached responses live: process memory in front of SQLite (one machine), or Redis
(several gateway processes). A cache that fails answers "miss" and says so in the log; it never
fails a request."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["LocalCache", "RedisCache", "ResponseCache"]

log = logging.getLogger("thrifty.cache")

_WARN_EVERY_S = 60.0


class ResponseCache(Protocol):
    async def get(self, namespace: str, key: str) -> bytes | None: ...

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: int) -> None: ...

    async def delete(self, namespace: str, key: str) -> bool:
        """Drop one entry (an answer judged wrong), everywhere the store is shared; whether it was there."""
        ...

    def clear(self, namespace: str | None = None) -> int:
        """Drop every entry (of one namespace); the number dropped (an estimate for Redis)."""
        ...

    async def close(self) -> None: ...


class _Warner:
    """One warning a minute while a backend keeps failing, not one a request."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, message: str, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last >= _WARN_EVERY_S:
            self._last = now
            log.warning("%s (requests go on as cache misses): %s: %s", message, type(error).__name__, error)


class LocalCache:
    """An LRU in process memory in front of a SQLite table. ``thrifty cache clear`` in another
    process bumps a generation number that every gateway checks once a second, dropping its
    memory copies, so a clear takes effect everywhere within a second. ``clock``: the time entries
    expire by (a replay runs them on the traffic's own clock)."""

    def __init__(
        self, path: str | Path, memory_entries: int = 10_000, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._path = str(path)
        self._clock = clock
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self._path, timeout=5.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS response_cache "
            "(key TEXT PRIMARY KEY, namespace TEXT NOT NULL, expires_at REAL NOT NULL, value BLOB NOT NULL)"
        )
        self._conn.execute("CREATE INDEX IF NOT EXISTS response_cache_namespace ON response_cache (namespace)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS response_cache_meta (name TEXT PRIMARY KEY, value INTEGER)")
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._memory_entries = memory_entries
        self._generation = self._read_generation()
        self._checked = time.monotonic()
        self._puts = 0
        self._warn = _Warner()

    def _read_generation(self) -> int:
        row = self._conn.execute("SELECT value FROM response_cache_meta WHERE name = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def _fresh_memory(self) -> None:
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        generation = self._read_generation()
        if generation != self._generation:
            self._generation = generation
            self._memory.clear()

    async def get(self, namespace: str, key: str) -> bytes | None:
        full = f"{namespace}\x00{key}"
        now = self._clock()
        try:
            with self._lock:
                self._fresh_memory()
                cached = self._memory.get(full)
                if cached is not None:
                    if cached[0] > now:
                        self._memory.move_to_end(full)
                        return cached[1]
                    del self._memory[full]
                row = self._conn.execute(
                    "SELECT expires_at, value FROM response_cache WHERE key = ? AND expires_at > ?", (full, now)
                ).fetchone()
                if row is None:
                    return None
                self._remember(full, float(row[0]), bytes(row[1]))
                return bytes(row[1])
        except sqlite3.Error as error:
            self._warn("cache: reading SQLite failed", error)
            return None

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: int) -> None:
        full = f"{namespace}\x00{key}"
        expires = self._clock() + ttl_s
        try:
            with self._lock:
                self._remember(full, expires, value)
                self._conn.execute(
                    "INSERT OR REPLACE INTO response_cache (key, namespace, expires_at, value) VALUES (?, ?, ?, ?)",
                    (full, namespace, expires, value),
                )
                self._puts += 1
                if self._puts % 1000 == 0:
                    self._conn.execute("DELETE FROM response_cache WHERE expires_at <= ?", (self._clock(),))
        except sqlite3.Error as error:
            self._warn("cache: writing SQLite failed", error)

    async def delete(self, namespace: str, key: str) -> bool:
        """The row goes, and the generation moves on so every process drops its memory copies
        within a second (as ``clear`` does): an answer judged wrong is served nowhere again."""
        full = f"{namespace}\x00{key}"
        with self._lock:
            self._memory.pop(full, None)
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                dropped = self._conn.execute("DELETE FROM response_cache WHERE key = ?", (full,)).rowcount
                self._conn.execute(
                    "INSERT INTO response_cache_meta (name, value) VALUES ('generation', 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + 1"
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._generation = self._read_generation()
            return dropped > 0

    def _remember(self, full: str, expires: float, value: bytes) -> None:
        if self._memory_entries == 0:
            return
        self._memory[full] = (expires, value)
        self._memory.move_to_end(full)
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)

    def clear(self, namespace: str | None = None) -> int:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if namespace is None:
                    dropped = self._conn.execute("DELETE FROM response_cache").rowcount
                else:
                    dropped = self._conn.execute(
                        "DELETE FROM response_cache WHERE namespace = ?", (namespace,)
                    ).rowcount
                self._conn.execute(
                    "INSERT INTO response_cache_meta (name, value) VALUES ('generation', 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + 1"
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._memory.clear()
            self._generation = self._read_generation()
            return int(dropped)

    async def close(self) -> None:
        with self._lock:
            self._conn.close()


class RedisCache:
    """Entries under ``thrifty:cache:<namespace>:<key>`` with Redis's own expiry."""

    def __init__(self, url: str, timeout_s: float = 0.1) -> None:
        import redis.asyncio as aioredis

        self._url = url
        self._client = aioredis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._warn = _Warner()

    @staticmethod
    def _key(namespace: str, key: str) -> str:
        return f"thrifty:cache:{namespace}:{key}"

    async def get(self, namespace: str, key: str) -> bytes | None:
        try:
            value = await self._client.get(self._key(namespace, key))
        except Exception as error:  # any Redis failure is a miss, never a failed request
            self._warn("cache: Redis unavailable", error)
            return None
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: int) -> None:
        try:
            await self._client.set(self._key(namespace, key), value, ex=ttl_s)
        except Exception as error:
            self._warn("cache: Redis unavailable", error)

    async def delete(self, namespace: str, key: str) -> bool:
        return int(await self._client.delete(self._key(namespace, key))) > 0

    def clear(self, namespace: str | None = None) -> int:
        import redis

        client = redis.Redis.from_url(self._url)
        pattern = "thrifty:cache:*" if namespace is None else f"thrifty:cache:{_glob_escape(namespace)}:*"
        dropped = 0
        try:
            batch: list[bytes] = []
            for name in client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    dropped += int(client.unlink(*batch))
                    batch.clear()
            if batch:
                dropped += int(client.unlink(*batch))
        finally:
            client.close()
        return dropped

    async def close(self) -> None:
        await self._client.aclose()


def _glob_escape(text: str) -> str:
    """A namespace matched literally in a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
