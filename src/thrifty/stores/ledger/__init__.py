"""Ledger storage: SQLite (embedded default) and PostgreSQL (shared), chosen by URL."""

from __future__ import annotations

from thrifty.core.redact import redact_url
from thrifty.stores.ledger.base import GROUPINGS, GroupBy, Latencies, LedgerStore, Percentiles, Totals
from thrifty.stores.ledger.writer import LedgerWriter, WriterStats

__all__ = [
    "GROUPINGS",
    "GroupBy",
    "Latencies",
    "LedgerStore",
    "LedgerWriter",
    "Percentiles",
    "Totals",
    "WriterStats",
    "open_ledger",
]


def open_ledger(url: str, *, migrate: bool = True) -> LedgerStore:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:`` or
    ``postgresql://user@host:port/db``."""
    store: LedgerStore
    if url.startswith("sqlite:///"):
        from thrifty.stores.ledger.sqlite import SQLiteLedger

        path = url.removeprefix("sqlite:///")
        if not path:
            raise ValueError(f"ledger URL {redact_url(url)!r} names no file; e.g. sqlite:///thrifty.db")
        store = SQLiteLedger(path)
    elif url.startswith(("postgresql://", "postgres://")):
        try:
            from thrifty.stores.ledger.postgres import PostgresLedger
        except ImportError as error:  # pragma: no cover - depends on the install
            raise ValueError(
                "a PostgreSQL ledger needs the 'postgres' extra: pip install 'thrifty[postgres]'"
            ) from error
        store = PostgresLedger(url)
    else:
        raise ValueError(f"unsupported ledger URL {redact_url(url)!r}: use sqlite:///FILE or postgresql://...")
    if migrate:
        store.migrate()
    return store
