"""Batch rates: the catalogue's own first, then thrifty's reviewed table (dated, with sources),
then 50% of the standard rates; each quote says which applied."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from thrifty.batch.pricing import price_line
from thrifty.core.pricing import Catalogue, PriceBook, PriceOverride
from thrifty.core.pricing.reviewed import BATCH_RATES, reviewed_batch_rate
from thrifty.core.usage import Usage

DEC = datetime(2026, 12, 4, 12, tzinfo=UTC)
D = Decimal
MTOK = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def test_a_model_without_catalogue_batch_rates_uses_the_reviewed_table(book: PriceBook) -> None:
    priced = book.price(MTOK, "claude-opus-4-1", at=DEC, batch=True)
    assert priced.cost.total == D("45")  # $7.50 + $37.50, Anthropic's batch table
    assert any("reviewed table" in n and "docs.anthropic.com" in n for n in priced.quote.notes)
    assert not any("50%" in n for n in priced.quote.notes)


def test_reviewed_cache_rates_stack_the_caching_multipliers_on_the_batch_rate(book: PriceBook) -> None:
    usage = Usage(input_tokens=3_000_000, cache_read_tokens=1_000_000, cache_write_5m_tokens=1_000_000)
    cost = book.price(usage, "claude-3-5-haiku-latest", at=DEC, batch=True).cost
    assert cost.uncached_input == D("0.40")
    assert cost.cache_read == D("0.040")
    assert cost.cache_write == D("0.500")


def test_catalogue_batch_rates_come_before_the_table(book: PriceBook) -> None:
    priced = book.price(MTOK, "claude-sonnet-4-5", at=DEC, batch=True)
    assert priced.quote.notes == ("batch rates from the catalogue",)


def test_neither_falls_back_to_half_price_and_says_so(book: PriceBook) -> None:
    priced = book.price(MTOK, "gpt-4o", at=datetime(2026, 1, 1, tzinfo=UTC), batch=True)
    assert priced.cost.total == D("6.25")
    assert any("50%" in n for n in priced.quote.notes)


def test_an_override_with_no_rates_of_its_own_takes_the_table_too() -> None:
    book = PriceBook([PriceOverride("claude-opus-4-1", note="ours")])
    assert book.price(MTOK, "claude-opus-4-1", at=DEC, batch=True).cost.total == D("45")


def test_every_entry_names_a_catalogue_model_and_is_half_its_standard_rate() -> None:
    catalogue = Catalogue()
    for entry in BATCH_RATES:
        found = catalogue.find(entry.model, entry.provider)
        assert found is not None and found.model_id == entry.model, entry.model
        standard = catalogue.rates(found, DEC, batch=False)
        assert standard is not None
        assert entry.input == standard.rates.input.per_mtok / 2, entry.model
        assert entry.output == standard.rates.output.per_mtok / 2, entry.model
        assert entry.source.startswith("https://") and entry.reviewed <= DEC.date()
        assert not catalogue.has_batch_rates(found, DEC), f"{entry.model}: the catalogue has it now; drop the entry"


def test_entries_are_dated() -> None:
    entry = reviewed_batch_rate("anthropic", "claude-opus-4-1", DEC.date())
    assert entry is not None and entry.in_force(DEC.date())
    assert reviewed_batch_rate("openai", "claude-opus-4-1", DEC.date()) is None


def test_a_line_is_priced_at_batch_rates_with_its_saving(book: PriceBook) -> None:
    line = price_line(book, MTOK, "claude-opus-4-1", provider="anthropic", at=DEC)
    assert line.cost.total == D("45")
    assert line.standard == D("90")
    assert line.saving == D("45")
