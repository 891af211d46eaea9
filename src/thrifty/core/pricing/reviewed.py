"""Batch rates the catalogue does not have, kept as reviewed data: each entry dated, with its
source and the day it was checked against it.

Looked up after the catalogue's own batch rates (genai-prices publishes some, from 2026-10-14 on)
and before the 50% fallback, so a quote says which of the three applied. Entries are added only
from a provider's own page, read on the day in ``reviewed``; a rate the page does not give (the
cache rates of Anthropic's older models) is derived as the page says it is and the entry says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from thrifty.core.pricing.rates import Rate, Rates

__all__ = ["BATCH_RATES", "ReviewedRate", "reviewed_batch_rate"]

_ANTHROPIC_BATCH = "https://docs.anthropic.com/en/docs/build-with-claude/batch-processing (Pricing)"
_ANTHROPIC_CACHE = (
    "cache rates: the prompt-caching multipliers (reads 0.1x, 5-minute writes 1.25x, 1-hour writes 2x) "
    "on the batch input rate, as Anthropic's pricing page says the two discounts stack"
)
_CHECKED = date(2026, 12, 4)


@dataclass(frozen=True, slots=True)
class ReviewedRate:
    """One model's batch rates, USD per million tokens, in force from ``starts`` (None: since the
    model was offered) until ``ends`` (None: still)."""

    provider: str
    """The catalogue's provider id."""
    model: str
    """The catalogue's model id (what ``CatalogueEntry.model_id`` says)."""
    input: Decimal
    output: Decimal
    cache_read: Decimal | None
    cache_write_5m: Decimal | None
    cache_write_1h: Decimal | None
    source: str
    reviewed: date
    starts: date | None = None
    ends: date | None = None
    note: str | None = None

    def in_force(self, day: date) -> bool:
        return (self.starts is None or self.starts <= day) and (self.ends is None or day < self.ends)

    def rates(self, standard: Rates) -> Rates:
        """The entry as ``Rates``; a kind it leaves out is half its ``standard`` rate."""
        half = standard.scaled(Decimal("0.5"))
        return Rates(
            input=Rate(self.input),
            output=Rate(self.output),
            cache_read=Rate(self.cache_read) if self.cache_read is not None else half.cache_read,
            cache_write_5m=Rate(self.cache_write_5m) if self.cache_write_5m is not None else half.cache_write_5m,
            cache_write_1h=Rate(self.cache_write_1h) if self.cache_write_1h is not None else half.cache_write_1h,
            reasoning=Rate(self.output),
        )

    def describe(self) -> str:
        checked = f"batch rates from thrifty's reviewed table: {self.source}, checked {self.reviewed.isoformat()}"
        return f"{checked}; {self.note}" if self.note else checked


def _anthropic(model: str, batch_input: str, batch_output: str) -> ReviewedRate:
    base = Decimal(batch_input)
    return ReviewedRate(
        provider="anthropic",
        model=model,
        input=base,
        output=Decimal(batch_output),
        cache_read=base * Decimal("0.1"),
        cache_write_5m=base * Decimal("1.25"),
        cache_write_1h=base * 2,
        source=_ANTHROPIC_BATCH,
        reviewed=_CHECKED,
        note=_ANTHROPIC_CACHE,
    )


BATCH_RATES: tuple[ReviewedRate, ...] = (
    # Anthropic's batch table lists these models; the catalogue has no batch rates for them.
    _anthropic("claude-opus-4-1", "7.50", "37.50"),
    _anthropic("claude-opus-4-0", "7.50", "37.50"),
    _anthropic("claude-sonnet-4-0", "1.50", "7.50"),
    _anthropic("claude-3-7-sonnet-latest", "1.50", "7.50"),
    _anthropic("claude-3-5-sonnet", "1.50", "7.50"),
    _anthropic("claude-3-5-haiku-latest", "0.40", "2"),
    _anthropic("claude-3-opus-latest", "7.50", "37.50"),
    _anthropic("claude-3-haiku", "0.125", "0.625"),
)
"""The reviewed batch rates. OpenAI's batch rates are all in the catalogue for the models it
lists (from 2026-10-14); before that date, and for the rest, the 50% fallback stands."""


def reviewed_batch_rate(
    provider: str, model: str, day: date, table: tuple[ReviewedRate, ...] = BATCH_RATES
) -> ReviewedRate | None:
    """The entry for ``model`` of ``provider`` in force on ``day``, if there is one."""
    for entry in table:
        if entry.provider == provider and entry.model == model and entry.in_force(day):
            return entry
    return None
