"""User price overrides: custom and fine-tuned models, self-hosted models, corrections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from thrifty.core.pricing.rates import Rate, Rates

__all__ = ["PriceOverride", "SelfHosted"]

_SECONDS_PER_HOUR = Decimal(3600)
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class SelfHosted:
    """A model on hardware rented by the hour: a token costs the hour's price divided by the tokens
    the deployment processes in that hour (the measured throughput, summed over concurrent requests).
    Prefill and decode run at very different speeds, so input and output have separate throughputs."""

    usd_per_hour: Decimal
    input_tokens_per_second: Decimal
    output_tokens_per_second: Decimal

    def __post_init__(self) -> None:
        if self.usd_per_hour < 0:
            raise ValueError("usd_per_hour must not be negative")
        if self.input_tokens_per_second <= 0 or self.output_tokens_per_second <= 0:
            raise ValueError("throughput (tokens per second) must be positive")

    def rates(self) -> Rates:
        per_second = self.usd_per_hour / _SECONDS_PER_HOUR
        return Rates.simple(
            input_per_mtok=per_second / self.input_tokens_per_second * _MILLION,
            output_per_mtok=per_second / self.output_tokens_per_second * _MILLION,
        )


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """Rates a user sets for a model, on top of (or instead of) the catalogue.

    Fields left ``None`` keep the catalogue's rate when the model is in the catalogue; a model the
    catalogue does not know needs at least input and output rates (or ``self_hosted``).
    """

    model: str
    provider: str | None = None
    match: Literal["exact", "prefix"] = "exact"
    starts: date | None = None
    """The rates are in force from this UTC date on; several overrides give a price history."""
    input_per_mtok: Decimal | None = None
    output_per_mtok: Decimal | None = None
    cache_read_per_mtok: Decimal | None = None
    cache_write_5m_per_mtok: Decimal | None = None
    cache_write_1h_per_mtok: Decimal | None = None
    batch_discount: Decimal | None = None
    """Batch rates as a fraction of the standard rates (0.5 for half price)."""
    self_hosted: SelfHosted | None = None
    context_window: int | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("an override needs a model name")
        if self.self_hosted is not None and self.has_token_rates:
            raise ValueError(f"{self.model}: give either self_hosted or per-token rates, not both")
        for name in (
            "input_per_mtok",
            "output_per_mtok",
            "cache_read_per_mtok",
            "cache_write_5m_per_mtok",
            "cache_write_1h_per_mtok",
        ):
            value = getattr(self, name)
            if value is not None and (not value.is_finite() or value < 0):
                raise ValueError(f"{self.model}: {name} must be a non-negative number")
        if self.batch_discount is not None and not (0 < self.batch_discount <= 1):
            raise ValueError(f"{self.model}: batch_discount must be in (0, 1]")

    @property
    def has_token_rates(self) -> bool:
        return any(
            value is not None
            for value in (
                self.input_per_mtok,
                self.output_per_mtok,
                self.cache_read_per_mtok,
                self.cache_write_5m_per_mtok,
                self.cache_write_1h_per_mtok,
            )
        )

    @property
    def is_complete(self) -> bool:
        """Prices a model on its own, with no catalogue entry underneath."""
        return self.self_hosted is not None or (self.input_per_mtok is not None and self.output_per_mtok is not None)

    def matches(self, model: str, provider: str | None) -> bool:
        if self.provider is not None and provider is not None and self.provider != provider:
            return False
        name = model.lower()
        wanted = self.model.lower()
        return name == wanted if self.match == "exact" else name.startswith(wanted)

    def in_force(self, day: date) -> bool:
        return self.starts is None or self.starts <= day

    def apply(self, base: Rates | None) -> Rates:
        """These rates over ``base`` (the catalogue's), or on their own when ``base`` is None."""
        if self.self_hosted is not None:
            return self.self_hosted.rates()
        if base is None:
            if self.input_per_mtok is None or self.output_per_mtok is None:
                raise ValueError(
                    f"{self.model} is not in the price catalogue: its override needs input and output rates"
                )
            return Rates.simple(
                self.input_per_mtok,
                self.output_per_mtok,
                self.cache_read_per_mtok,
                self.cache_write_5m_per_mtok,
                self.cache_write_1h_per_mtok,
            )
        changes: dict[str, Rate] = {}
        if self.input_per_mtok is not None:
            changes["input"] = Rate(self.input_per_mtok)
        if self.output_per_mtok is not None:
            changes["output"] = Rate(self.output_per_mtok)
            changes["reasoning"] = Rate(self.output_per_mtok)
        if self.cache_read_per_mtok is not None:
            changes["cache_read"] = Rate(self.cache_read_per_mtok)
        if self.cache_write_5m_per_mtok is not None:
            changes["cache_write_5m"] = Rate(self.cache_write_5m_per_mtok)
        if self.cache_write_1h_per_mtok is not None:
            changes["cache_write_1h"] = Rate(self.cache_write_1h_per_mtok)
        return base.with_changes(**changes)
