"""Rates and the cost arithmetic: exact, in Decimal USD, no rounding anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

from thrifty.core.usage import Usage

__all__ = ["Cost", "Rate", "Rates", "Tier", "compute_cost", "format_usd"]

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Tier:
    """From ``start`` total input tokens (exclusive) on, every token of the call costs ``per_mtok``."""

    start: int
    per_mtok: Decimal


@dataclass(frozen=True, slots=True)
class Rate:
    """USD per million tokens, with optional long-context tiers.

    Tiers are cliffs, as the providers bill them: a call whose total input crosses a tier's start
    pays the tier's rate on *all* of its tokens of this kind, not only on those past the start.
    """

    per_mtok: Decimal
    tiers: tuple[Tier, ...] = ()

    def at(self, total_input_tokens: int) -> Decimal:
        if not self.tiers:
            return self.per_mtok
        for tier in reversed(self.tiers):
            if total_input_tokens > tier.start:
                return tier.per_mtok
        return self.per_mtok

    def scaled(self, factor: Decimal) -> Rate:
        return Rate(self.per_mtok * factor, tuple(Tier(t.start, t.per_mtok * factor) for t in self.tiers))


@dataclass(frozen=True, slots=True)
class Rates:
    """Every rate a chat call can be billed at. All are concrete: where a catalogue has no separate
    rate (say, no cache-read discount) the resolver fills in the rate the provider actually bills."""

    input: Rate
    output: Rate
    cache_read: Rate
    cache_write_5m: Rate
    cache_write_1h: Rate
    reasoning: Rate

    @classmethod
    def simple(
        cls,
        input_per_mtok: Decimal,
        output_per_mtok: Decimal,
        cache_read_per_mtok: Decimal | None = None,
        cache_write_5m_per_mtok: Decimal | None = None,
        cache_write_1h_per_mtok: Decimal | None = None,
    ) -> Rates:
        """Flat rates; missing cache rates bill as plain input (as providers without a discount do)."""
        inp = Rate(input_per_mtok)
        write_5m = Rate(cache_write_5m_per_mtok) if cache_write_5m_per_mtok is not None else inp
        return cls(
            input=inp,
            output=Rate(output_per_mtok),
            cache_read=Rate(cache_read_per_mtok) if cache_read_per_mtok is not None else inp,
            cache_write_5m=write_5m,
            cache_write_1h=Rate(cache_write_1h_per_mtok) if cache_write_1h_per_mtok is not None else write_5m,
            reasoning=Rate(output_per_mtok),
        )

    def scaled(self, factor: Decimal) -> Rates:
        return Rates(
            input=self.input.scaled(factor),
            output=self.output.scaled(factor),
            cache_read=self.cache_read.scaled(factor),
            cache_write_5m=self.cache_write_5m.scaled(factor),
            cache_write_1h=self.cache_write_1h.scaled(factor),
            reasoning=self.reasoning.scaled(factor),
        )

    def with_changes(self, **rates: Rate) -> Rates:
        return replace(self, **rates)


@dataclass(frozen=True, slots=True)
class Cost:
    """What a call cost, by what it was billed for. ``total`` is the exact sum of the parts."""

    uncached_input: Decimal = _ZERO
    cache_read: Decimal = _ZERO
    cache_write: Decimal = _ZERO
    output: Decimal = _ZERO
    total: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.uncached_input + self.cache_read + self.cache_write + self.output)

    @property
    def input(self) -> Decimal:
        """Everything billed for input: uncached, cache reads and cache writes."""
        return self.uncached_input + self.cache_read + self.cache_write

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            uncached_input=self.uncached_input + other.uncached_input,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
            output=self.output + other.output,
        )

    def as_dict(self) -> dict[str, str]:
        """Decimal strings, the only lossless way to hand money to JSON."""
        return {
            "uncached_input_usd": format_usd(self.uncached_input),
            "cache_read_usd": format_usd(self.cache_read),
            "cache_write_usd": format_usd(self.cache_write),
            "output_usd": format_usd(self.output),
            "total_usd": format_usd(self.total),
        }


def compute_cost(usage: Usage, rates: Rates) -> Cost:
    """The exact cost of ``usage`` at ``rates``. Pure arithmetic; nothing is looked up.

    Written flat, without helpers: it runs for every call, and the pricing budget is microseconds.
    ``scaleb(-6)`` divides by a million exactly (no rounding, unlike ``/ 1_000_000`` past 28 digits).
    """
    total_input = usage.input_tokens
    reads = usage.cache_read_tokens
    writes_5m = usage.cache_write_5m_tokens
    writes_1h = usage.cache_write_1h_tokens
    reasoning = usage.reasoning_tokens
    uncached = total_input - reads - writes_5m - writes_1h
    plain_output = usage.output_tokens - reasoning
    uncached_cost = (rates.input.at(total_input) * uncached).scaleb(-6) if uncached else _ZERO
    read_cost = (rates.cache_read.at(total_input) * reads).scaleb(-6) if reads else _ZERO
    write_cost = _ZERO
    if writes_5m:
        write_cost = (rates.cache_write_5m.at(total_input) * writes_5m).scaleb(-6)
    if writes_1h:
        write_cost += (rates.cache_write_1h.at(total_input) * writes_1h).scaleb(-6)
    output_cost = (rates.output.at(total_input) * plain_output).scaleb(-6) if plain_output else _ZERO
    if reasoning:
        output_cost += (rates.reasoning.at(total_input) * reasoning).scaleb(-6)
    return Cost(uncached_cost, read_cost, write_cost, output_cost)


def format_usd(amount: Decimal) -> str:
    """A plain decimal string with no exponent and no trailing zeros: ``0.0025``, ``500``."""
    if not amount:
        return "0"
    text = str(amount)  # the fast path; it uses an exponent for very small or large amounts
    if "E" in text:
        text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
