"""The ledger store protocol, report rows, and the migrations both backends share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any, Literal, Protocol

from thrifty.core.ledger import LedgerRecord

__all__ = ["GROUPINGS", "GroupBy", "LedgerStore", "Migration", "Totals", "load_migrations", "sql_statements"]

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
