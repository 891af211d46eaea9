"""Counts over one field of the ledger rows' ``details`` (JSON), for either engine: what the
report needs beyond the columns (why calls bypassed the caches). A connection of its own, like
``thrifty.stores.ledger.feedback``'s, so the store classes stay about the columns."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from typing import Any

__all__ = ["count_detail"]

_FIELD = re.compile(r"^[a-z_]{1,64}$")


def count_detail(
    url: str,
    field: str,
    *,
    cache_status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str | None, int]:
    """Rows by the value of ``details.<field>`` (None: rows without it), optionally only those
    with ``cache_status``, in ``[since, until)``."""
    if not _FIELD.match(field):
        raise ValueError(f"not a details field name: {field!r}")
    postgres = url.startswith(("postgresql://", "postgres://"))
    value = f"details->>'{field}'" if postgres else f"json_extract(details, '$.{field}')"
    clauses: list[str] = []
    params: list[Any] = []
    if cache_status is not None:
        clauses.append("cache_status = ?")
        params.append(cache_status)
    for bound, op in ((since, ">="), (until, "<")):
        if bound is not None:
            clauses.append(f"ts {op} ?")
            params.append(bound if postgres else bound.astimezone(UTC).isoformat(timespec="microseconds"))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {value} AS value, COUNT(*) AS n FROM ledger{where} GROUP BY 1"
    if postgres:
        import psycopg

        with psycopg.connect(url, connect_timeout=10) as conn:
            rows = conn.execute(sql.replace("?", "%s").encode(), params).fetchall()
    else:
        lite = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30.0)
        try:
            rows = lite.execute(sql, params).fetchall()
        finally:
            lite.close()
    return {row[0]: int(row[1]) for row in rows}
