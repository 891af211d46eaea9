"""Exact prices: rates from the pinned catalogue and the user's overrides, Decimal cost math."""

from __future__ import annotations

from thrifty.core.pricing.book import PriceBook, PricedUsage, PriceQuote, UnknownModelError
from thrifty.core.pricing.catalogue import Catalogue
from thrifty.core.pricing.overrides import PriceOverride, SelfHosted
from thrifty.core.pricing.rates import Cost, Rate, Rates, Tier, compute_cost, format_usd

__all__ = [
    "Catalogue",
    "Cost",
    "PriceBook",
    "PriceOverride",
    "PriceQuote",
    "PricedUsage",
    "Rate",
    "Rates",
    "SelfHosted",
    "Tier",
    "UnknownModelError",
    "compute_cost",
    "format_usd",
]
