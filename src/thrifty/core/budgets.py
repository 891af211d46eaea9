"""Budget and rate-limit arithmetic: pure, no I/O.

Windows (calendar days, weeks and months in UTC or a named time zone, and rolling windows) and
when they reset; which budgets and limits apply to a call; the most a call can cost; and money as
exact integers for the counters the stores keep.

Money in the counters is an integer number of pico-dollars (10^-12 USD). Every price in the
catalogue has at most six decimals per million tokens, so a call's cost is a whole number of
pico-dollars: the counters add up exactly to the ledger's decimal costs. A cost with more
decimals (a hand-written override) is rounded *up*, so a counter can only over-count, never let
spend escape. Integers stay exact in Redis (INCRBY is 64-bit) and in SQLite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from thrifty.core.pricing.rates import Rates, format_usd
from thrifty.errors import BudgetError

__all__ = [
    "BUDGET_SCOPES",
    "MAX_USD_LIMIT",
    "RATE_SCOPES",
    "UNITS_PER_USD",
    "Budget",
    "BudgetError",
    "OnExceed",
    "Period",
    "RateLimit",
    "RateScope",
    "Scope",
    "Subject",
    "Unit",
    "Window",
    "WindowKind",
    "budget_from_doc",
    "budget_to_doc",
    "describe_amount",
    "max_call_cost",
    "max_output_tokens",
    "units_to_usd",
    "usd_to_units",
]

Scope = Literal["key", "user", "team", "feature", "tag", "global"]
BUDGET_SCOPES: tuple[Scope, ...] = ("key", "user", "team", "feature", "tag", "global")
RateScope = Literal["key", "user", "team", "model", "deployment", "global"]
RATE_SCOPES: tuple[RateScope, ...] = ("key", "user", "team", "model", "deployment", "global")
WindowKind = Literal["day", "week", "month", "rolling"]
Unit = Literal["usd", "tokens"]
OnExceed = Literal["refuse", "downgrade"]

UNITS_PER_USD = 10**12
"""Counters hold pico-dollars."""
MAX_USD_LIMIT = Decimal(1_000_000)
"""The largest USD limit: a counter of pico-dollars stays far inside 64 bits (9.2 million dollars)
even when the last calls of a window settle above it."""
ROLLING_BUCKETS = 60
"""A rolling window is counted in this many buckets; a bucket counts whole while any of it is in
the window, so the sum can only over-count (by at most one bucket's spend), never under-count."""


def usd_to_units(amount: Decimal) -> int:
    """Pico-dollars, rounded up."""
    return int(amount.scaleb(12).to_integral_value(rounding=ROUND_CEILING))


def units_to_usd(units: int) -> Decimal:
    return Decimal(units).scaleb(-12)


def describe_amount(unit: Unit, units: int) -> str:
    """For people: ``$4.25`` (at least cents), ``12,000 tokens``."""
    if unit == "tokens":
        return f"{units:,} tokens"
    amount = units_to_usd(units)
    text = format_usd(amount)
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


# -- windows -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """One window of a budget: the counter it is kept in, and when it resets."""

    key: str
    """Names the counter: ``day:2026-05-01`` (the local date), ``week:2026-04-27`` (its Monday),
    ``month:2026-05``, or ``rolling`` (a rolling window keeps one counter of buckets)."""
    start: datetime | None
    """UTC; None for a rolling window."""
    reset: datetime | None
    """UTC; None for a rolling window (its spend leaves bucket by bucket; the store knows when)."""


@dataclass(frozen=True, slots=True)
class Window:
    kind: WindowKind
    seconds: int = 0
    """Rolling windows only: the window's length."""
    timezone: str = "UTC"
    """Calendar windows only: where the day, week or month begins."""

    def __post_init__(self) -> None:
        if self.kind == "rolling":
            if self.seconds < 60:
                raise BudgetError("a rolling window needs a length of at least 60 seconds")
        elif self.seconds:
            raise BudgetError(f"a {self.kind} window has no length of its own (only rolling windows do)")
        _zone(self.timezone)

    @property
    def label(self) -> str:
        """Stable text naming the window (part of a budget's id)."""
        if self.kind == "rolling":
            return f"rolling{self.seconds}s"
        return self.kind if self.timezone == "UTC" else f"{self.kind}@{self.timezone}"

    def describe(self) -> str:
        if self.kind == "rolling":
            return f"rolling {_duration(self.seconds)}"
        per = {"day": "per day", "week": "per week", "month": "per month"}[self.kind]
        return f"{per} ({self.timezone})"

    @property
    def bucket_seconds(self) -> int:
        return max(1, math.ceil(self.seconds / ROLLING_BUCKETS)) if self.kind == "rolling" else 0

    def period(self, now: datetime) -> Period:
        """The window that holds ``now`` (timezone-aware)."""
        if now.tzinfo is None:
            raise BudgetError("times must be timezone-aware")
        if self.kind == "rolling":
            return Period("rolling", None, None)
        zone = _zone(self.timezone)
        local = now.astimezone(zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.kind == "day":
            start_date = midnight.date()
            end_date = start_date + timedelta(days=1)
            key = f"day:{start_date.isoformat()}"
        elif self.kind == "week":
            start_date = midnight.date() - timedelta(days=midnight.weekday())
            end_date = start_date + timedelta(days=7)
            key = f"week:{start_date.isoformat()}"
        else:
            start_date = midnight.date().replace(day=1)
            end_date = (start_date + timedelta(days=32)).replace(day=1)
            key = f"month:{start_date.strftime('%Y-%m')}"
        start = _local_midnight(start_date.year, start_date.month, start_date.day, zone)
        reset = _local_midnight(end_date.year, end_date.month, end_date.day, zone)
        return Period(key, start, reset)


def _local_midnight(year: int, month: int, day: int, zone: ZoneInfo) -> datetime:
    """Midnight of a local date in UTC. (Where a zone skips midnight, the wall clock is still
    turned into the instant the zone's rules give; both neighbours agree on it.)"""
    return datetime(year, month, day, tzinfo=zone).astimezone(UTC)


_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    zone = _ZONES.get(name)
    if zone is None:
        try:
            zone = _ZONES[name] = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise BudgetError(f"unknown time zone {name!r} (use an IANA name such as UTC or Europe/Paris)") from None
    return zone


def _duration(seconds: int) -> str:
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- budgets -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a call is for, as budgets and limits see it."""

    user: str | None = None
    team: str | None = None
    feature: str | None = None
    key: str | None = None
    tags: tuple[str, ...] = ()
    model: str | None = None
    deployment: str | None = None

    def values(self, scope: str) -> tuple[str, ...]:
        """The call's values in a scope: none when the call has none there (tags: one or more)."""
        if scope == "global":
            return ("*",)
        if scope == "tag":
            return self.tags
        value = getattr(self, scope, None)
        return (value,) if value else ()


@dataclass(frozen=True, slots=True)
class Budget:
    """A spend or token limit over a window, for one scope.

    ``value`` names the one user (team, feature, key, tag) it is for; ``None`` for a non-global
    scope means *each* of them separately (every user gets the limit on their own)."""

    scope: Scope
    value: str | None
    window: Window
    unit: Unit
    limit: int
    """Pico-dollars for ``usd``, tokens for ``tokens``."""
    alert_at: tuple[Decimal, ...] = (Decimal("0.8"),)
    """Fractions of the limit that raise an alert, once per window each."""
    on_exceed: OnExceed = "refuse"
    downgrade_to: str | None = None
    """The cheaper model to send a call to when it no longer fits (``on_exceed: downgrade``)."""
    source: str = "admin"
    """``config``, ``admin`` or ``plan:NAME``."""
    id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.scope not in BUDGET_SCOPES:
            raise BudgetError(f"unknown budget scope {self.scope!r}; choose from {', '.join(BUDGET_SCOPES)}")
        if self.scope == "global" and self.value is not None:
            raise BudgetError("a global budget names no value")
        if self.limit < 0:
            raise BudgetError("a budget's limit must not be negative")
        if self.unit == "usd" and self.limit > usd_to_units(MAX_USD_LIMIT):
            raise BudgetError(f"a USD budget is at most ${MAX_USD_LIMIT:,}")
        for fraction in self.alert_at:
            if not Decimal(0) < fraction <= Decimal(1):
                raise BudgetError(f"alert thresholds are fractions of the limit in (0, 1], got {fraction}")
        if self.on_exceed == "downgrade" and not self.downgrade_to:
            raise BudgetError("on_exceed: downgrade needs downgrade_to (the cheaper model)")
        if not self.id:
            prefix = f"{self.source}/" if self.source.startswith("plan:") else ""
            who = self.value if self.value is not None else "*"
            object.__setattr__(self, "id", f"{prefix}{self.scope}:{who}:{self.window.label}:{self.unit}")

    def subjects(self, subject: Subject) -> tuple[str, ...]:
        """The counters of this budget that a call with ``subject`` is charged to (none: it does
        not apply to the call)."""
        values = subject.values(self.scope)
        if self.value is None:
            return values
        return (self.value,) if self.value in values else ()

    def who(self, subject_value: str) -> str:
        if self.scope == "global":
            return "everyone (global)"
        return f"{self.scope} {subject_value}"

    def describe_limit(self) -> str:
        return f"{describe_amount(self.unit, self.limit)} {self.window.describe()}"


def budget_to_doc(budget: Budget) -> dict[str, Any]:
    """A budget as JSON (money as an exact decimal string): what the stores keep."""
    doc: dict[str, Any] = {
        "id": budget.id,
        "scope": budget.scope,
        "value": budget.value,
        "window": budget.window.kind,
        "unit": budget.unit,
        "limit": format_usd(units_to_usd(budget.limit)) if budget.unit == "usd" else budget.limit,
        "alert_at": [format_usd(a) for a in budget.alert_at],
        "on_exceed": budget.on_exceed,
        "downgrade_to": budget.downgrade_to,
        "source": budget.source,
    }
    if budget.window.kind == "rolling":
        doc["seconds"] = budget.window.seconds
    else:
        doc["timezone"] = budget.window.timezone
    return doc


def budget_from_doc(doc: Mapping[str, Any]) -> Budget:
    try:
        unit = doc["unit"]
        if unit not in ("usd", "tokens"):
            raise BudgetError(f"unknown unit {unit!r}")
        raw_limit = doc["limit"]
        limit = usd_to_units(Decimal(str(raw_limit))) if unit == "usd" else int(raw_limit)
        window = Window(doc["window"], int(doc.get("seconds") or 0), str(doc.get("timezone") or "UTC"))
        return Budget(
            scope=doc["scope"],
            value=doc.get("value"),
            window=window,
            unit=unit,
            limit=limit,
            alert_at=tuple(Decimal(str(a)) for a in doc.get("alert_at", ("0.8",))),
            on_exceed=doc.get("on_exceed", "refuse"),
            downgrade_to=doc.get("downgrade_to"),
            source=str(doc.get("source", "admin")),
        )
    except (KeyError, TypeError, ArithmeticError) as error:
        raise BudgetError(f"not a budget: {error}") from None


# -- rate limits -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests and tokens admitted per window (a minute unless configured), counted in a sliding
    window across every gateway process. Tokens are weighted as the providers do: a call's input
    tokens plus its max_tokens."""

    scope: RateScope
    value: str | None = None
    """One key (user, team, model, deployment); None: each of them separately."""
    requests: int | None = None
    tokens: int | None = None
    window_s: int = 60

    def __post_init__(self) -> None:
        if self.scope not in RATE_SCOPES:
            raise BudgetError(f"unknown rate-limit scope {self.scope!r}; choose from {', '.join(RATE_SCOPES)}")
        if self.requests is None and self.tokens is None:
            raise BudgetError("a rate limit needs requests_per_minute or tokens_per_minute")
        if self.window_s < 1:
            raise BudgetError("a rate limit's window is at least a second")

    @property
    def id(self) -> str:
        who = self.value if self.value is not None else "*"
        return f"{self.scope}:{who}:{self.window_s}s"

    def subjects(self, subject: Subject) -> tuple[str, ...]:
        values = subject.values(self.scope)
        if self.value is None:
            return values
        return (self.value,) if self.value in values else ()

    @property
    def bucket_ms(self) -> int:
        """Windows are counted in 20 buckets (a bucket counts whole while any of it is inside, so
        what is admitted in any window of ``window_s`` never exceeds the limit)."""
        return max(50, self.window_s * 1000 // 20)


def applicable(items: Iterable[Budget], subject: Subject) -> list[tuple[Budget, str]]:
    """Each budget that applies to a call, with the counter (subject value) it charges."""
    found = []
    for budget in items:
        for value in budget.subjects(subject):
            found.append((budget, value))
    return found


# -- the most a call can cost ------------------------------------------------------------------


def max_output_tokens(
    requested: int | None, model_max: int | None, context_window: int | None, input_tokens: int, default: int
) -> int:
    """The most output a call can produce: what the client asked for (capped by the model), else
    the model's own maximum, else what its context window leaves, else ``default``."""
    bounds = [b for b in (requested, model_max) if b is not None]
    if context_window is not None:
        bounds.append(max(0, context_window - input_tokens))
    return min(bounds) if bounds else default


def max_call_cost(rates: Rates, input_tokens: int, output_tokens: int, *, cache_writes: bool = False) -> Decimal:
    """The most a call of ``input_tokens`` and at most ``output_tokens`` can cost at ``rates``:
    every input token at the dearest rate it may be billed at (a cache write when the request
    asks for caching), every output token at the dearer of the output and reasoning rates."""
    input_rate = rates.input.at(input_tokens)
    if cache_writes:
        input_rate = max(input_rate, rates.cache_write_5m.at(input_tokens), rates.cache_write_1h.at(input_tokens))
    output_rate = max(rates.output.at(input_tokens), rates.reasoning.at(input_tokens))
    return (input_rate * input_tokens + output_rate * output_tokens).scaleb(-6)


def worst_case(budgets: Sequence[tuple[Budget, str]]) -> bool:
    """True when any of the budgets is in USD (and so needs a price)."""
    return any(b.unit == "usd" for b, _ in budgets)
