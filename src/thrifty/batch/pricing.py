"""One batch line priced: at the batch rates (the catalogue's, the reviewed table's, or 50% of
standard, the quote says which), with what the same line would have cost synchronously."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from thrifty.core.pricing import Cost, PriceBook, PriceQuote
from thrifty.core.usage import Usage

__all__ = ["LinePrice", "price_line"]


@dataclass(frozen=True, slots=True)
class LinePrice:
    cost: Cost
    """At the batch rates: what the provider bills."""
    standard: Decimal
    """The same usage at the standard rates."""
    quote: PriceQuote
    """The batch quote (its notes say where the batch rates came from)."""

    @property
    def saving(self) -> Decimal:
        """``savings.batch``: standard minus batch."""
        return self.standard - self.cost.total


def price_line(prices: PriceBook, usage: Usage, model: str, *, provider: str | None, at: datetime) -> LinePrice:
    """Raises ``UnknownModelError`` for a model with no price (never a silent $0)."""
    batch = prices.price(usage, model, provider=provider, at=at, batch=True)
    standard = prices.price(usage, model, provider=provider, at=at).cost.total
    return LinePrice(batch.cost, standard, batch.quote)
