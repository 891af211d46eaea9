"""Captured calls in the ledger: a sampled call's row carries its redacted request under
``details.capture`` (written with the row, by the same journal and sidecar: see
``pipeline.steps.capture``). Here they are read back in time order, for ``thrifty capture
export`` and ``thrifty replay --ledger``, and dropped once past their retention."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from thrifty.core.capture import captured_from_record
from thrifty.core.ledger import LedgerRecord

__all__ = ["export_lines", "forget_captures", "read_captures"]

_BATCH = 1000


def read_captures(url: str, since: datetime | None = None, until: datetime | None = None) -> Iterator[LedgerRecord]:
    """The ledger rows that carry a capture, oldest first."""
    if url.startswith("sqlite:///"):
        yield from _sqlite_rows(url.removeprefix("sqlite:///"), since, until)
    elif url.startswith(("postgresql://", "postgres://")):
        yield from _postgres_rows(url, since, until)
    else:
        raise ValueError("a ledger URL starts with sqlite:/// or postgresql://")


def export_lines(url: str, since: datetime | None = None, until: datetime | None = None) -> Iterator[str]:
    """``thrifty capture export``'s lines: one JSON capture each (``CapturedCall.to_json``)."""
    for record in read_captures(url, since, until):
        captured = captured_from_record(record)
        if captured is not None:
            yield orjson.dumps(captured.to_json(), default=str).decode()


def forget_captures(url: str, before: datetime) -> int:
    """Drop the captures of rows older than ``before`` (the rows stay: they are the spend); how
    many were dropped."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30.0, isolation_level=None)
        try:
            done = conn.execute(
                "UPDATE ledger SET details = json_remove(details, '$.capture') "
                "WHERE ts < ? AND json_type(details, '$.capture') IS NOT NULL",
                (_iso(before),),
            )
            return int(done.rowcount)
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as pg:
        cursor = pg.execute(
            "UPDATE ledger SET details = details - 'capture' WHERE ts < %s AND jsonb_exists(details, 'capture')",
            (before,),
        )
        return int(cursor.rowcount)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _sqlite_rows(path: str, since: datetime | None, until: datetime | None) -> Iterator[LedgerRecord]:
    clauses, params = ["json_type(details, '$.capture') IS NOT NULL"], []
    if since is not None:
        clauses.append("ts >= ?")
        params.append(_iso(since))
    if until is not None:
        clauses.append("ts < ?")
        params.append(_iso(until))
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    conn.row_factory = sqlite3.Row
    try:
        cursor = conn.execute(f"SELECT * FROM ledger WHERE {' AND '.join(clauses)} ORDER BY ts, id", params)
        while rows := cursor.fetchmany(_BATCH):
            for row in rows:
                yield LedgerRecord.from_row(dict(row))
    finally:
        conn.close()


def _postgres_rows(url: str, since: datetime | None, until: datetime | None) -> Iterator[LedgerRecord]:
    import psycopg
    from psycopg.rows import dict_row

    clauses, params = ["jsonb_exists(details, 'capture')"], []
    for bound, op in ((since, ">="), (until, "<")):
        if bound is not None:
            clauses.append(f"ts {op} %s")
            params.append(bound)
    sql = f"SELECT * FROM ledger WHERE {' AND '.join(clauses)} ORDER BY ts, id"
    with (
        psycopg.connect(url, connect_timeout=10, row_factory=dict_row) as pg,
        pg.cursor(name="thrifty_captures") as cur,
    ):
        cur.execute(sql.encode(), params)
        while rows := cur.fetchmany(_BATCH):
            for row in rows:
                yield _pg_record(row)


def _pg_record(row: dict[str, Any]) -> LedgerRecord:
    return LedgerRecord.from_row(row)
