"""The ledger store protocol, report rows, and the migrations both backends share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any, Literal, Protocol

from thrifty.core.ledger import LedgerRecord

__all__ = [
    "GROUPINGS",
    "PERCENTILES",
    "GroupBy",
    "Latencies",
    "LedgerStore",
    "Migration",
    "Percentiles",
    "Totals",
    "load_migrations",
    "percentiles",
    "sql_statements",
]

GroupBy = Literal["model", "provider", "feature", "user", "team", "key", "tag", "day", "status", "cache"]
GROUPINGS: tuple[GroupBy, ...] = (
    "model",
    "provider",
    "feature",
    "user",
    "team",
    "key",
    "tag",
    "day",
    "status",
    "cache",
)
"""``tag``: a call counts once under each of its tags (a call with none is under no tag)."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Totals of the calls that share one value of the grouping."""

    key: str | None
    calls: int
    errors: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost_usd: Decimal
    """Sum of the known costs."""
    unpriced_calls: int
    """Calls whose cost is unknown: not in ``cost_usd``, and reported so they are never mistaken for free."""
    counterfactual_usd: Decimal | None


PERCENTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Milliseconds at the 50th, 95th and 99th percentile, interpolated between the two nearest
    values as PostgreSQL's ``percentile_cont`` does (so both backends give the same numbers)."""

    p50: float
    p95: float
    p99: float


@dataclass(frozen=True, slots=True)
class Latencies:
    """The latency and time-to-first-token percentiles of the calls sharing one grouping value,
    over the calls that recorded one (``ttft_ms`` is recorded for streamed calls only); ``None``
    when none did."""

    key: str | None
    latency_ms: Percentiles | None
    ttft_ms: Percentiles | None


def percentiles(values: Sequence[float]) -> Percentiles | None:
    """``percentile_cont`` at ``PERCENTILES`` of ``values`` (any order); ``None`` for none."""
    ordered = sorted(values)
    if not ordered:
        return None
    last = len(ordered) - 1

    def at(fraction: float) -> float:
        rank = fraction * last
        low = math.floor(rank)
        high = math.ceil(rank)
        first = ordered[low]
        return first if low == high else first + (ordered[high] - first) * (rank - low)

    p50, p95, p99 = (at(f) for f in PERCENTILES)
    return Percentiles(p50, p95, p99)


class LedgerStore(Protocol):
    """Where ledger rows live. Inserting is idempotent on the record id, so a journal can be
    replayed after a crash without writing anything twice."""

    @property
    def url(self) -> str: ...

    def migrate(self) -> None: ...

    def insert_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows as ``LedgerRecord.to_values`` gives them; a row whose id is already stored is skipped."""

    def totals(
        self, group_by: GroupBy, since: datetime | None = None, until: datetime | None = None
    ) -> list[Totals]: ...

    def latencies(
        self, group_by: GroupBy, since: datetime | None = None, until: datetime | None = None
    ) -> list[Latencies]:
        """Latency and TTFT percentiles for each value of the grouping, ordered as ``totals``."""
        ...

    def records(
        self, since: datetime | None = None, until: datetime | None = None, limit: int = 100
    ) -> list[LedgerRecord]: ...

    def count(self) -> int: ...

    def savings(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, Decimal]:
        """Money saved by each strategy (exact_cache, semantic_cache, prompt_cache, routing, ...)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(backend: Literal["sqlite", "postgres"]) -> list[Migration]:
    """Numbered SQL files (``0001_name.sql``), applied in order, each once."""
    folder = resources.files("thrifty.stores.ledger").joinpath("migrations", backend)
    migrations = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            migrations.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(migrations, key=lambda m: m.version)


def sql_statements(sql: str) -> list[str]:
    """Our own migration files: ``--`` comments run to the end of the line, ``;`` ends a statement."""
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in code.split(";") if s.strip()]
