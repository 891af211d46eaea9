"""The price-override file: custom, fine-tuned and self-hosted models, corrections, a default."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from thrifty.config.files import ConfigError, describe_validation_error, load_document
from thrifty.core.pricing import Catalogue, PriceBook, PriceOverride, Rates, SelfHosted

__all__ = ["PriceFile", "load_price_book", "price_book_from_document"]

NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SelfHostedSpec(_Strict):
    usd_per_hour: NonNegative
    input_tokens_per_second: Positive
    output_tokens_per_second: Positive


class DefaultPrice(_Strict):
    input_mtok: NonNegative
    output_mtok: NonNegative


class ModelPrice(_Strict):
    model: Annotated[str, Field(min_length=1)]
    provider: str | None = None
    match: Literal["exact", "prefix"] = "exact"
    starts: date | None = None
    input_mtok: NonNegative | None = None
    output_mtok: NonNegative | None = None
    cache_read_mtok: NonNegative | None = None
    cache_write_mtok: NonNegative | None = None
    cache_write_1h_mtok: NonNegative | None = None
    batch_discount: Annotated[Decimal, Field(gt=0, le=1)] | None = None
    self_hosted: SelfHostedSpec | None = None
    context_window: Annotated[int, Field(gt=0)] | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_kind_of_price(self) -> ModelPrice:
        token_rates = (self.input_mtok, self.output_mtok, self.cache_read_mtok, self.cache_write_mtok)
        if self.self_hosted is not None and any(r is not None for r in token_rates):
            raise ValueError("give either self_hosted or per-token rates, not both")
        return self

    def to_override(self) -> PriceOverride:
        hosted = self.self_hosted
        return PriceOverride(
            model=self.model,
            provider=self.provider,
            match=self.match,
            starts=self.starts,
            input_per_mtok=self.input_mtok,
            output_per_mtok=self.output_mtok,
            cache_read_per_mtok=self.cache_read_mtok,
            cache_write_5m_per_mtok=self.cache_write_mtok,
            cache_write_1h_per_mtok=self.cache_write_1h_mtok,
            batch_discount=self.batch_discount,
            self_hosted=None
            if hosted is None
            else SelfHosted(hosted.usd_per_hour, hosted.input_tokens_per_second, hosted.output_tokens_per_second),
            context_window=self.context_window,
            note=self.note,
        )


class PriceFile(_Strict):
    """``models:`` a list of model prices; ``default_price:`` for models nobody knows (optional:
    without it an unknown model is an error, never a silent $0)."""

    models: list[ModelPrice] = Field(default_factory=list)
    default_price: DefaultPrice | None = None


def price_book_from_document(document: Any, source: str, catalogue: Catalogue | None = None) -> PriceBook:
    if document is None:
        document = {}
    try:
        spec = PriceFile.model_validate(document)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, source)) from None
    catalogue = catalogue if catalogue is not None else Catalogue()
    overrides = []
    for index, model in enumerate(spec.models):
        override = model.to_override()
        where = f"{source}: models[{index}] ({model.model})"
        if not override.has_token_rates and override.self_hosted is None and override.batch_discount is None:
            raise ConfigError(f"{where}: sets no price")
        if not override.is_complete:
            if override.match == "prefix":
                raise ConfigError(f"{where}: a prefix match needs both input_mtok and output_mtok (or self_hosted)")
            if catalogue.find(override.model, override.provider) is None:
                raise ConfigError(
                    f"{where}: not in the price catalogue, so it needs both input_mtok and output_mtok (or self_hosted)"
                )
        overrides.append(override)
    default = spec.default_price
    return PriceBook(
        overrides=overrides,
        default_rates=None if default is None else Rates.simple(default.input_mtok, default.output_mtok),
        catalogue=catalogue,
    )


def load_price_book(path: str | Path | None) -> PriceBook:
    """The catalogue with the overrides in ``path`` (YAML or JSON) on top; the bare catalogue if None."""
    if path is None:
        return PriceBook()
    return price_book_from_document(load_document(path), str(path))
