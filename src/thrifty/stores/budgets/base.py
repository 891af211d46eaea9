"""The budget store protocol: atomic reserve / settle / release of budget counters, sliding-window
rate limits, budget definitions and once-only alerts. Two backends: SQLite (one machine) and Redis
(several gateway processes); both keep money as integer pico-dollars (see ``core.budgets``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from thrifty.errors import StoreUnavailable

__all__ = [
    "SEP",
    "BudgetStore",
    "Line",
    "LineUsage",
    "RateLine",
    "RateRefusal",
    "Refusal",
    "StoreUnavailable",
    "line_key",
]

SEP = "\x1f"
"""Between the parts of a counter's key (budget id, subject, period). Labels are printable ASCII,
so it never occurs inside one."""


def line_key(budget_id: str, subject: str, period: str) -> str:
    return f"{budget_id}{SEP}{subject}{SEP}{period}"


@dataclass(frozen=True, slots=True)
class Line:
    """One budget counter that a call is charged to."""

    key: str
    amount: int
    """To reserve (the most the call can cost), or to settle (what it did cost)."""
    limit: int
    rolling_ms: int = 0
    """A rolling window's length; 0 for a calendar window (one counter per period)."""
    bucket_ms: int = 0
    ttl_s: int = 0
    """How long the counter is kept after its last change (past the window's reset)."""
    held: int = 0
    """Settling only: what the reservation held on this line (a store may use it rather than
    read the reservation back)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The first line that the call would take over its limit."""

    index: int
    spent: int
    reserved: int
    retry_after_s: float | None
    """Rolling windows: seconds until enough spend leaves the window (None: the store cannot say)."""


@dataclass(frozen=True, slots=True)
class LineUsage:
    spent: int
    reserved: int
    frees_at: float | None = None
    """Rolling windows: epoch seconds when the oldest spend leaves the window."""


@dataclass(frozen=True, slots=True)
class RateLine:
    """One sliding window a call is admitted to: ``amount`` requests or tokens."""

    key: str
    amount: int
    limit: int
    window_ms: int
    bucket_ms: int


@dataclass(frozen=True, slots=True)
class RateRefusal:
    index: int
    used: int
    wait_s: float | None
    """Seconds until the call fits; None when it never can (its amount exceeds the limit)."""


class BudgetStore(Protocol):
    """Every method is atomic: check-and-reserve is one step, across processes."""

    @property
    def url(self) -> str: ...

    @property
    def owner(self) -> str:
        """This process's id; its reservations lapse when it stops renewing its lease."""
        ...

    async def reserve(self, reservation: str, lines: Sequence[Line]) -> Refusal | None:
        """Reserve ``amount`` on every line, or on none: None when reserved."""
        ...

    async def settle(self, reservation: str, lines: Sequence[Line]) -> list[int]:
        """Replace the reservation by the actual ``amount`` of each line; the lines' spend after.
        A reservation already lapsed is not an error: the actual spend is added all the same."""
        ...

    async def release(self, reservation: str) -> None: ...

    async def usage(self, lines: Sequence[Line]) -> list[LineUsage]: ...

    async def subjects(self, budget_id: str, period: str) -> list[str]:
        """The subjects (user, team, ...) with a counter of the budget in the period."""
        ...

    async def heartbeat(self) -> None:
        """Renew this process's lease, and let lapsed reservations of dead processes go."""
        ...

    async def release_all(self) -> None:
        """Release every reservation of this process (a clean shutdown)."""
        ...

    async def admit(self, lines: Sequence[RateLine]) -> RateRefusal | None:
        """Count ``amount`` in every window, or in none: None when admitted."""
        ...

    async def claim_alert(self, key: str, ttl_s: int) -> bool:
        """True the first time ``key`` is claimed (until ``ttl_s`` passes), by any process."""
        ...

    async def definitions(self) -> list[dict[str, Any]]: ...

    async def put_definition(self, budget_id: str, doc: dict[str, Any], *, only_new: bool = False) -> bool:
        """Store a budget; with ``only_new``, only when none has the id yet. True when stored."""
        ...

    async def delete_definition(self, budget_id: str) -> bool: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def rolling_sum(buckets: dict[int, int], now_ms: int, line: Line) -> tuple[int, list[int], float | None]:
    """The spend of a rolling line's buckets still in the window, the buckets that left it, and
    when the oldest one still in will leave (epoch seconds)."""
    current = now_ms // line.bucket_ms
    span = -(-line.rolling_ms // line.bucket_ms)
    total, old, oldest = 0, [], None
    for index, amount in buckets.items():
        if index < current - span:
            old.append(index)
        else:
            total += amount
            if amount and (oldest is None or index < oldest):
                oldest = index
    frees_at = None if oldest is None else (oldest + span + 1) * line.bucket_ms / 1000
    return total, old, frees_at


def rate_wait(buckets: dict[int, int], now_ms: int, line: RateLine, used: int) -> float:
    """Seconds until enough of the window's oldest buckets leave it for ``line`` to fit."""
    current = now_ms // line.bucket_ms
    span = -(-line.window_ms // line.bucket_ms)
    need = used + line.amount - line.limit
    freed = 0
    for index in sorted(i for i in buckets if i >= current - span):
        freed += buckets[index]
        if freed >= need:
            return max(0.0, ((index + span + 1) * line.bucket_ms - now_ms) / 1000)
    return line.window_ms / 1000
