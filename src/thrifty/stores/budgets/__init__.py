"""Budget counters, reservations, rate-limit windows and budget definitions: SQLite (one
machine) or Redis (several gateway processes), chosen by URL."""

from __future__ import annotations

from thrifty.core.redact import redact_url
from thrifty.stores.budgets.base import (
    BudgetStore,
    Line,
    LineUsage,
    RateLine,
    RateRefusal,
    Refusal,
    StoreUnavailable,
    line_key,
)

__all__ = [
    "BudgetStore",
    "Line",
    "LineUsage",
    "RateLine",
    "RateRefusal",
    "Refusal",
    "StoreUnavailable",
    "line_key",
    "open_budget_store",
]


def open_budget_store(url: str, *, prefix: str = "thrifty:budgets:", lease_s: float = 15.0) -> BudgetStore:
    """``sqlite:///FILE`` or ``redis://host:port/db`` (also ``rediss://``, ``unix://``)."""
    if url.startswith("sqlite:///"):
        from thrifty.stores.budgets.sqlite import SQLiteBudgetStore

        path = url.removeprefix("sqlite:///")
        if not path:
            raise ValueError(f"budget store URL {redact_url(url)!r} names no file")
        return SQLiteBudgetStore(path, lease_s=lease_s)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from thrifty.stores.budgets.redis import RedisBudgetStore

        return RedisBudgetStore(url, prefix=prefix, lease_s=lease_s)
    raise ValueError(f"unsupported budget store URL {redact_url(url)!r}: use sqlite:///FILE or redis://HOST:PORT/DB")
