"""The public price catalogue (``genai-prices``, pinned), read as ``Rates``.

Only the snapshot bundled with the pinned package is read; nothing here touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from thrifty.core.pricing.rates import Rate, Rates, Tier

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, ModelPrice, Provider

__all__ = ["Catalogue", "CatalogueEntry", "CatalogueRates", "earliest_known"]

_BATCH_CONTEXT = {"processing": "batch"}
_PREFERRED = {"openai": 0, "anthropic": 1, "google": 2, "mistral": 3, "deepseek": 4}
"""When a model's provider is not given, the model makers' own price lists before resellers'."""
_HALF = Decimal("0.5")


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """A model found in the catalogue."""

    provider_id: str
    model_id: str
    name: str | None
    context_window: int | None
    deprecated: bool
    info: ModelInfo
    time_of_day_prices: bool
    """True when the model's price depends on the time of day, not only on the date."""


@dataclass(frozen=True, slots=True)
class CatalogueRates:
    rates: Rates
    notes: tuple[str, ...]


class Catalogue:
    """A read-only view of the pinned ``genai-prices`` data."""

    def __init__(self, snapshot: DataSnapshot | None = None) -> None:
        if snapshot is None:
            # Imported here, not at module import: the catalogue is ~1 s of data to load.
            from genai_prices import data_snapshot

            snapshot = data_snapshot.get_snapshot()
        self._snapshot = snapshot

    def find(self, model: str, provider: str | None = None) -> CatalogueEntry | None:
        try:
            found_provider, info = self._snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            if provider is not None:
                return None
            return self._find_by_name(model)
        return _entry(found_provider, info)

    def _find_by_name(self, model: str) -> CatalogueEntry | None:
        """The catalogue guesses a provider from a model's name only for some families (not, for
        one, OpenAI's embedding models); failing that, the model's own providers come first."""
        ranked = sorted(self._snapshot.providers, key=lambda p: _PREFERRED.get(p.id, len(_PREFERRED)))
        for provider in ranked:
            info = provider.find_model(model.lower(), all_providers=self._snapshot.providers)
            if info is not None:
                return _entry(provider, info)
        return None

    def entries(self) -> Iterator[CatalogueEntry]:
        for provider in self._snapshot.providers:
            for info in provider.models:
                yield _entry(provider, info)

    def provider_ids(self) -> list[str]:
        return [provider.id for provider in self._snapshot.providers]

    def has_batch_rates(self, entry: CatalogueEntry, at: datetime) -> bool:
        """Whether the catalogue publishes batch rates of its own for the model at ``at``."""
        return _has_batch_rates(entry.info, at)

    def rates(self, entry: CatalogueEntry, at: datetime, batch: bool) -> CatalogueRates | None:
        """The rates in force at ``at``; ``None`` when the catalogue has no token prices for it."""
        notes: list[str] = []
        if batch and _has_batch_rates(entry.info, at):
            price = entry.info.get_prices(at, _BATCH_CONTEXT)
            notes.append("batch rates from the catalogue")
            factor = None
        else:
            price = entry.info.get_prices(at)
            factor = _HALF if batch else None
        rates = _rates_from_price(price)
        if rates is None:
            return None
        if price.output_mtok is None:
            notes.append(f"{entry.model_id} has no output price in the catalogue (an input-only model)")
        if factor is not None:
            rates = rates.scaled(factor)
            notes.append(
                f"the catalogue has no batch rate for {entry.model_id} on {at.date().isoformat()}; "
                "priced at 50% of the standard rates"
            )
        return CatalogueRates(rates, tuple(notes))


_DATED = re.compile(r"(?<![0-9])(20[0-9]{2})-?([01][0-9])-?([0-3][0-9])(?![0-9])")


def earliest_known(entry: CatalogueEntry) -> tuple[date, str] | None:
    """The earliest date the catalogue knows of for this model, and what says so: the first of
    its dated prices when every price has a start date, else its oldest dated version name
    (``gpt-4o-2024-05-13``). ``None`` when it has neither (its first rates carry no date)."""
    from genai_prices.types import ModelPrice, StartDateConstraint

    found: list[tuple[date, str]] = []
    prices = entry.info.prices
    if not isinstance(prices, ModelPrice):
        starts = [p.constraint.start_date for p in prices if isinstance(p.constraint, StartDateConstraint)]
        if len(starts) == len(prices):  # every price has a start: before the first there is none
            found.append((min(starts), "its first price"))
    for name in (entry.model_id, *_names(entry.info.match)):
        for year, month, day in _DATED.findall(name):
            try:
                found.append((date(int(year), int(month), int(day)), name))
            except ValueError:
                continue
    return min(found, key=lambda f: f[0]) if found else None


def _names(logic: object) -> Iterator[str]:
    for attribute in ("equals", "starts_with"):
        value = getattr(logic, attribute, None)
        if isinstance(value, str):
            yield value
    for attribute in ("or_", "and_"):
        for clause in getattr(logic, attribute, None) or ():
            yield from _names(clause)


def _entry(provider: Provider, info: ModelInfo) -> CatalogueEntry:
    return CatalogueEntry(
        provider_id=provider.id,
        model_id=info.id,
        name=info.name,
        context_window=info.context_window,
        deprecated=bool(info.deprecated),
        info=info,
        time_of_day_prices=_depends_on_time_of_day(info),
    )


def _has_batch_rates(info: ModelInfo, at: datetime) -> bool:
    for variant in info.price_variants or ():
        if variant.when == _BATCH_CONTEXT and (variant.constraint is None or variant.constraint.active(at)):
            return True
    return False


def _depends_on_time_of_day(info: ModelInfo) -> bool:
    from genai_prices.types import ModelPrice, TimeOfDateConstraint

    constraints = [] if isinstance(info.prices, ModelPrice) else [p.constraint for p in info.prices]
    constraints += [v.constraint for v in info.price_variants or ()]
    return any(isinstance(c, TimeOfDateConstraint) for c in constraints)


def _rate(value: object) -> Rate | None:
    from genai_prices.types import TieredPrices

    if value is None:
        return None
    if isinstance(value, TieredPrices):
        return Rate(value.base, tuple(Tier(t.start, t.price) for t in value.tiers))
    if isinstance(value, Decimal):
        return Rate(value)
    raise TypeError(f"unexpected price value in the catalogue: {value!r}")


def _rates_from_price(price: ModelPrice) -> Rates | None:
    """Fill every rate the way the provider bills it when the catalogue has no separate rate:
    cache reads and writes without their own rate are plain input; reasoning is plain output."""
    inp = _rate(price.input_mtok)
    if inp is None:
        return None
    # Input-only models (embeddings, moderation) have no output price: they produce no tokens.
    out = _rate(price.output_mtok) or Rate(Decimal(0))
    read = _rate(price.cache_read_mtok)
    write = _rate(price.cache_write_mtok)
    write_5m = _rate(price.cache_write_5m_mtok) or write
    write_1h = _rate(price.cache_write_1h_mtok) or write
    return Rates(
        input=inp,
        output=out,
        cache_read=read or inp,
        cache_write_5m=write_5m or inp,
        cache_write_1h=write_1h or inp,
        reasoning=_rate(price.output_reasoning_mtok) or out,
    )
