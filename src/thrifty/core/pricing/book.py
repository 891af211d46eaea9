"""The price book: which rates apply to a call, and what the call cost.

Lookup order for a model: the user's overrides in force at the call's date, then the pinned
catalogue, then a default price if the user configured one. An unknown model is an
``UnknownModelError`` -- never a silent $0.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from thrifty.core.pricing.catalogue import Catalogue, CatalogueEntry, CatalogueRates
from thrifty.core.pricing.overrides import PriceOverride
from thrifty.core.pricing.rates import Cost, Rates, compute_cost
from thrifty.core.pricing.reviewed import reviewed_batch_rate
from thrifty.core.usage import Usage
from thrifty.errors import UnknownModelError

__all__ = ["PriceBook", "PriceQuote", "PricedUsage", "UnknownModelError"]

PriceSource = Literal["catalogue", "override", "self-hosted", "default"]
_HALF = Decimal("0.5")
_CACHE_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """The rates that apply to one model on one date, and where they came from."""

    model: str
    provider: str | None
    model_id: str
    rates: Rates
    source: PriceSource
    batch: bool
    context_window: int | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PricedUsage:
    cost: Cost
    quote: PriceQuote


@dataclass(frozen=True, slots=True)
class _Resolution:
    """What a (model, provider) pair resolves to, independent of the date."""

    overrides: tuple[PriceOverride, ...]
    entry: CatalogueEntry | None
    by_minute: bool
    """Prices change with the time of day, so a quote is good for a minute, not a day."""


class PriceBook:
    """Resolves rates once per model and date (per minute for the rare time-of-day prices), then
    prices each call with plain Decimal arithmetic."""

    def __init__(
        self,
        overrides: Sequence[PriceOverride] = (),
        default_rates: Rates | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self._overrides = tuple(overrides)
        self._default = default_rates
        self._catalogue = catalogue if catalogue is not None else Catalogue()
        self._resolutions: dict[tuple[str, str | None], _Resolution] = {}
        self._quotes: dict[tuple[str, str | None, bool, date | datetime], PriceQuote] = {}

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    @property
    def overrides(self) -> tuple[PriceOverride, ...]:
        return self._overrides

    def price(
        self,
        usage: Usage,
        model: str,
        *,
        provider: str | None = None,
        at: datetime | None = None,
        batch: bool = False,
    ) -> PricedUsage:
        quote = self.quote(model, provider=provider, at=at, batch=batch)
        return PricedUsage(compute_cost(usage, quote.rates), quote)

    def quote(
        self, model: str, *, provider: str | None = None, at: datetime | None = None, batch: bool = False
    ) -> PriceQuote:
        when = at if at is not None and at.tzinfo is UTC else _utc(at)
        resolution = self._resolutions.get((model, provider)) or self._resolve(model, provider)
        key = (model, provider, batch, when.replace(second=0, microsecond=0) if resolution.by_minute else when.date())
        quote = self._quotes.get(key)
        if quote is None:
            if len(self._quotes) >= _CACHE_LIMIT:
                self._quotes.clear()
            quote = self._quotes[key] = self._build_quote(model, provider, resolution, when, batch)
        return quote

    def known_model_names(self) -> list[str]:
        names = {entry.model_id for entry in self._catalogue.entries()}
        names.update(o.model for o in self._overrides)
        return sorted(names)

    def suggestions(self, model: str, limit: int = 3) -> list[str]:
        return difflib.get_close_matches(model.lower(), self.known_model_names(), n=limit, cutoff=0.6)

    def _resolve(self, model: str, provider: str | None) -> _Resolution:
        key = (model, provider)
        resolution = self._resolutions.get(key)
        if resolution is None:
            if len(self._resolutions) >= _CACHE_LIMIT:
                self._resolutions.clear()
            matching = tuple(o for o in self._overrides if o.matches(model, provider))
            entry = self._catalogue.find(model, provider)
            by_minute = entry is not None and entry.time_of_day_prices
            resolution = self._resolutions[key] = _Resolution(matching, entry, by_minute)
        return resolution

    def _build_quote(
        self, model: str, provider: str | None, resolution: _Resolution, when: datetime, batch: bool
    ) -> PriceQuote:
        entry = resolution.entry
        override = _latest_in_force(resolution.overrides, when.date())
        catalogue = self._catalogue.rates(entry, when, batch=False) if entry is not None else None
        base = catalogue.rates if catalogue is not None else None

        if override is not None and (base is not None or override.is_complete):
            rates = override.apply(base)
            notes = [override.note] if override.note else []
            if batch:
                rates, batch_note = self._override_batch(override, entry, when, rates)
                notes.append(batch_note)
            return PriceQuote(
                model=model,
                provider=provider or override.provider or (entry.provider_id if entry else None),
                model_id=entry.model_id if entry and not override.is_complete else override.model,
                rates=rates,
                source="self-hosted" if override.self_hosted is not None else "override",
                batch=batch,
                context_window=override.context_window or (entry.context_window if entry else None),
                notes=tuple(notes),
            )
        if entry is not None:
            priced = self._catalogue_batch(entry, when, catalogue) if batch else catalogue
            if priced is not None:
                return PriceQuote(
                    model=model,
                    provider=entry.provider_id,
                    model_id=entry.model_id,
                    rates=priced.rates,
                    source="catalogue",
                    batch=batch,
                    context_window=entry.context_window,
                    notes=priced.notes,
                )
        if self._default is not None:
            rates = self._default.scaled(_HALF) if batch else self._default
            return PriceQuote(
                model=model,
                provider=provider,
                model_id=model,
                rates=rates,
                source="default",
                batch=batch,
                context_window=None,
                notes=(f"{model} has no known price: priced at the configured default price",),
            )
        raise UnknownModelError(model, provider, self.suggestions(model))

    def _catalogue_batch(
        self, entry: CatalogueEntry, when: datetime, standard: CatalogueRates | None
    ) -> CatalogueRates | None:
        """Batch rates: the catalogue's own, else the reviewed table's, else 50% of the standard."""
        if standard is not None and not self._catalogue.has_batch_rates(entry, when):
            reviewed = reviewed_batch_rate(entry.provider_id, entry.model_id, when.date())
            if reviewed is not None:
                return CatalogueRates(reviewed.rates(standard.rates), (*standard.notes, reviewed.describe()))
        return self._catalogue.rates(entry, when, batch=True)

    def _override_batch(
        self, override: PriceOverride, entry: CatalogueEntry | None, when: datetime, standard: Rates
    ) -> tuple[Rates, str]:
        if override.batch_discount is not None:
            return standard.scaled(override.batch_discount), f"batch at {override.batch_discount} of the override"
        if entry is not None and not override.has_token_rates and override.self_hosted is None:
            batch_rates = self._catalogue_batch(entry, when, self._catalogue.rates(entry, when, batch=False))
            if batch_rates is not None:
                return batch_rates.rates, "; ".join(batch_rates.notes)
        return standard.scaled(_HALF), "no batch rate for this override: priced at 50% of its rates"


def _latest_in_force(overrides: tuple[PriceOverride, ...], day: date) -> PriceOverride | None:
    best: PriceOverride | None = None
    for override in overrides:
        if not override.in_force(day):
            continue
        if best is None or (override.starts or date.min) >= (best.starts or date.min):
            best = override
    return best


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (thrifty works in UTC)")
    return at.astimezone(UTC)
