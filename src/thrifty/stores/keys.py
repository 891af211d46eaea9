"""Virtual keys: they authenticate clients to the gateway and carry attribution (user, team,
feature). Stored in the ledger's database, hashed; the secret is returned once, at creation."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = ["KeyInfo", "KeyStore", "hash_secret", "new_secret", "open_keys"]

SECRET_PREFIX = "thr_"
_COLUMNS = "id, secret_hash, prefix, user_id, team, feature, note, created_at, revoked_at"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """A plain SHA-256 suffices: the secrets are 256 random bits, not passwords to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    prefix: str
    user: str | None
    team: str | None
    feature: str | None
    note: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyStore(Protocol):
    def create(
        self, *, user: str | None, team: str | None, feature: str | None, note: str | None = None
    ) -> tuple[KeyInfo, str]: ...

    def revoke(self, key_id: str) -> bool: ...

    def list(self, include_revoked: bool = False) -> list[KeyInfo]: ...

    def active_by_hash(self) -> dict[str, KeyInfo]: ...

    def find(self, secret_hash: str) -> KeyInfo | None: ...

    def any_created(self) -> bool:
        """Whether a key was ever created here, revoked or not (what makes keys required)."""
        ...

    def close(self) -> None: ...


def _info(row: Any) -> KeyInfo:
    def when(value: Any) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(str(value))

    created = when(row[7])
    assert created is not None
    return KeyInfo(
        id=row[0],
        prefix=row[2],
        user=row[3],
        team=row[4],
        feature=row[5],
        note=row[6],
        created_at=created,
        revoked_at=when(row[8]),
    )


class _SQLKeys:
    """The two backends differ only in placeholders and connections."""

    placeholder = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def create(
        self, *, user: str | None, team: str | None, feature: str | None, note: str | None = None
    ) -> tuple[KeyInfo, str]:
        secret = new_secret()
        key_id = "key_" + secrets.token_hex(8)
        now = datetime.now(UTC)
        row = (key_id, hash_secret(secret), secret[:10], user, team, feature, note, self._time(now), None)
        self._execute(f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        return KeyInfo(key_id, secret[:10], user, team, feature, note, now, None), secret

    def revoke(self, key_id: str) -> bool:
        rows = self._execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id",
            (self._time(datetime.now(UTC)), key_id),
        )
        return bool(rows)

    def list(self, include_revoked: bool = False) -> list[KeyInfo]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return [_info(r) for r in self._execute(f"SELECT {_COLUMNS} FROM api_keys{where} ORDER BY created_at")]

    def active_by_hash(self) -> dict[str, KeyInfo]:
        rows = self._execute(f"SELECT {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL")
        return {row[1]: _info(row) for row in rows}

    def find(self, secret_hash: str) -> KeyInfo | None:
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE secret_hash = ? AND revoked_at IS NULL", (secret_hash,)
        )
        return _info(rows[0]) if rows else None

    def any_created(self) -> bool:
        return bool(self._execute("SELECT 1 FROM api_keys LIMIT 1"))

    def _time(self, at: datetime) -> Any:
        return at


class SQLiteKeys(_SQLKeys):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=30000")

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _time(self, at: datetime) -> Any:
        return at.isoformat(timespec="microseconds")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresKeys(_SQLKeys):
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        import psycopg

        super().__init__()
        self._url = url
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        import psycopg

        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            cursor = self._conn.execute(self._sql(sql).encode(), params)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_keys(url: str) -> KeyStore:
    """The key store in the ledger database at ``url`` (migrated by opening the ledger first)."""
    from thrifty.stores.ledger import open_ledger

    open_ledger(url).close()  # runs the migrations, the keys table included
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SQLiteKeys(path)
    return PostgresKeys(url)
