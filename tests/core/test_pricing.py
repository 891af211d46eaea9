"""Exact prices: the catalogue read right, cached input and cache writes, batch, long-context tiers,
dates and times of day, overrides, and never a silent $0."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import genai_prices
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thrifty.core.pricing import (
    Catalogue,
    Cost,
    PriceBook,
    PriceOverride,
    Rates,
    SelfHosted,
    UnknownModelError,
    compute_cost,
)
from thrifty.core.usage import Usage

NOV = datetime(2026, 11, 1, 12, tzinfo=UTC)
D = Decimal


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def test_gpt_4o_cached_input_is_billed_at_the_cached_rate(book: PriceBook) -> None:
    usage = Usage(input_tokens=1_000_000, cache_read_tokens=400_000, output_tokens=100_000)
    cost = book.price(usage, "gpt-4o", at=NOV).cost
    assert cost.uncached_input == D("1.5")  # 600k x $2.50/M
    assert cost.cache_read == D("0.5")  # 400k x $1.25/M, not $2.50
    assert cost.output == D("1")  # 100k x $10/M
    assert cost.total == D("3")


def test_anthropic_cache_writes_by_ttl_and_reads(book: PriceBook) -> None:
    usage = Usage(
        input_tokens=10_000 + 20_000 + 5_000 + 2_000,
        cache_read_tokens=20_000,
        cache_write_5m_tokens=5_000,
        cache_write_1h_tokens=2_000,
        output_tokens=1_000,
    )
    cost = book.price(usage, "claude-sonnet-4-5", at=NOV).cost
    assert cost.uncached_input == D("0.03")  # 10k x $3
    assert cost.cache_read == D("0.006")  # 20k x $0.30
    assert cost.cache_write == D("0.01875") + D("0.012")  # 5k x $3.75 + 2k x $6
    assert cost.output == D("0.015")
    assert cost.total == D("0.08175")


def test_long_context_tier_applies_to_every_token_of_the_call(book: PriceBook) -> None:
    under = book.price(Usage(input_tokens=200_000, output_tokens=1_000), "claude-sonnet-4-5", at=NOV).cost
    over = book.price(Usage(input_tokens=200_001, output_tokens=1_000), "claude-sonnet-4-5", at=NOV).cost
    assert under.uncached_input == D("0.6")  # 200k x $3: at the threshold, still base
    assert under.output == D("0.015")
    assert over.uncached_input == D("1.200006")  # 200,001 x $6: the whole call at the tier
    assert over.output == D("0.0225")  # output at $22.50 too


def test_a_price_change_applies_from_its_date(book: PriceBook) -> None:
    usage = Usage(input_tokens=300_000)
    before = book.price(usage, "claude-opus-4-6", at=datetime(2026, 3, 12, 23, 59, tzinfo=UTC)).cost
    after = book.price(usage, "claude-opus-4-6", at=datetime(2026, 3, 13, 0, 0, tzinfo=UTC)).cost
    assert before.total == D("3")  # the >200k tier ($10/M) before 13 March 2026
    assert after.total == D("1.5")  # flat $5/M from then on


def test_time_of_day_prices_are_not_cached_per_day(book: PriceBook) -> None:
    usage = Usage(input_tokens=1_000_000)
    peak = book.price(usage, "deepseek-chat", at=datetime(2026, 5, 1, 8, 0, tzinfo=UTC)).cost
    off_peak = book.price(usage, "deepseek-chat", at=datetime(2026, 5, 1, 20, 0, tzinfo=UTC)).cost
    assert peak.total == D("0.27")
    assert off_peak.total == D("0.135")


def test_batch_uses_catalogue_batch_rates_where_published(book: PriceBook) -> None:
    priced = book.price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "gpt-4o", at=NOV, batch=True)
    assert priced.cost.total == D("6.25")  # $1.25 + $5
    assert priced.quote.batch
    assert priced.quote.notes == ("batch rates from the catalogue",)


def test_batch_falls_back_to_half_price_and_says_so(book: PriceBook) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)  # before the catalogue's gpt-4o batch rates start
    priced = book.price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "gpt-4o", at=at, batch=True)
    assert priced.cost.total == D("6.25")  # 50% of $2.50 + $10
    assert any("50%" in note for note in priced.quote.notes)


def test_reasoning_tokens_are_output(book: PriceBook) -> None:
    with_reasoning = Usage(input_tokens=1000, output_tokens=5000, reasoning_tokens=4000)
    plain = Usage(input_tokens=1000, output_tokens=5000)
    assert book.price(with_reasoning, "o3", at=NOV).cost == book.price(plain, "o3", at=NOV).cost


def test_an_unknown_model_is_an_error_with_suggestions_never_zero(book: PriceBook) -> None:
    with pytest.raises(UnknownModelError) as raised:
        book.price(Usage(input_tokens=10), "gpt-4o-minii", at=NOV)
    assert "gpt-4o-minii" in str(raised.value)
    assert "gpt-4o-mini" in raised.value.suggestions


def test_a_configured_default_price_prices_unknown_models_with_a_note() -> None:
    book = PriceBook(default_rates=Rates.simple(D("1"), D("2")))
    priced = book.price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "in-house-llm", at=NOV)
    assert priced.cost.total == D("3")
    assert priced.quote.source == "default"
    assert priced.quote.notes


def test_naive_timestamps_are_refused(book: PriceBook) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        book.quote("gpt-4o", at=datetime(2026, 1, 1))


def test_rates_are_resolved_once_per_model_and_day(book: PriceBook) -> None:
    first = book.quote("gpt-4o-mini", at=datetime(2026, 6, 1, 1, tzinfo=UTC))
    again = book.quote("gpt-4o-mini", at=datetime(2026, 6, 1, 23, tzinfo=UTC))
    next_day = book.quote("gpt-4o-mini", at=datetime(2026, 6, 2, 1, tzinfo=UTC))
    assert first is again
    assert next_day is not first


class TestOverrides:
    def test_a_custom_model_needs_no_catalogue_entry(self) -> None:
        book = PriceBook([PriceOverride("acme-ft-1", input_per_mtok=D("0.3"), output_per_mtok=D("1.2"))])
        priced = book.price(Usage(input_tokens=2_000_000, output_tokens=500_000), "acme-ft-1", at=NOV)
        assert priced.cost.total == D("1.2")
        assert priced.quote.source == "override"

    def test_a_correction_changes_only_what_it_names(self) -> None:
        book = PriceBook([PriceOverride("gpt-4o", output_per_mtok=D("8"))])
        cost = book.price(
            Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000, output_tokens=1_000_000), "gpt-4o", at=NOV
        ).cost
        assert cost.cache_read == D("1.25")  # kept from the catalogue
        assert cost.output == D("8")

    def test_dated_overrides_form_a_price_history(self) -> None:
        book = PriceBook(
            [
                PriceOverride("house", starts=date(2026, 1, 1), input_per_mtok=D("1"), output_per_mtok=D("1")),
                PriceOverride("house", starts=date(2026, 6, 1), input_per_mtok=D("2"), output_per_mtok=D("2")),
            ]
        )
        usage = Usage(input_tokens=1_000_000)
        assert book.price(usage, "house", at=datetime(2026, 5, 31, tzinfo=UTC)).cost.total == D("1")
        assert book.price(usage, "house", at=datetime(2026, 6, 1, tzinfo=UTC)).cost.total == D("2")
        with pytest.raises(UnknownModelError):
            book.price(usage, "house", at=datetime(2025, 12, 31, tzinfo=UTC))

    def test_a_future_correction_leaves_todays_catalogue_price(self) -> None:
        book = PriceBook([PriceOverride("gpt-4o", starts=date(2027, 1, 1), output_per_mtok=D("1"))])
        usage = Usage(input_tokens=0, output_tokens=1_000_000)
        assert book.price(usage, "gpt-4o", at=NOV).cost.total == D("10")
        assert book.price(usage, "gpt-4o", at=datetime(2027, 1, 2, tzinfo=UTC)).cost.total == D("1")

    def test_self_hosted_price_comes_from_dollars_per_hour_and_throughput(self) -> None:
        hosted = SelfHosted(
            usd_per_hour=D("3.6"), input_tokens_per_second=D("10000"), output_tokens_per_second=D("500")
        )
        book = PriceBook([PriceOverride("llama-local", self_hosted=hosted)])
        # $3.60/h = $0.001/s; input 10,000 tok/s -> $0.1 per million; output 500 tok/s -> $2 per million.
        priced = book.price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "llama-local", at=NOV)
        assert priced.cost.uncached_input == D("0.1")
        assert priced.cost.output == D("2")
        assert priced.quote.source == "self-hosted"

    def test_prefix_overrides_cover_a_family(self) -> None:
        book = PriceBook([PriceOverride("ft:acme-", match="prefix", input_per_mtok=D("1"), output_per_mtok=D("1"))])
        assert book.price(Usage(input_tokens=1_000_000), "ft:acme-v7", at=NOV).cost.total == D("1")

    def test_override_batch_discount(self) -> None:
        book = PriceBook(
            [PriceOverride("acme", input_per_mtok=D("4"), output_per_mtok=D("4"), batch_discount=D("0.25"))]
        )
        assert book.price(Usage(input_tokens=1_000_000), "acme", at=NOV, batch=True).cost.total == D("1")

    def test_an_incomplete_override_of_an_unknown_model_is_refused(self) -> None:
        book = PriceBook([PriceOverride("nobody-knows", input_per_mtok=D("1"))])
        with pytest.raises(UnknownModelError):
            book.price(Usage(input_tokens=1), "nobody-knows", at=NOV)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"input_per_mtok": D("-1")},
            {"batch_discount": D("0")},
            {"batch_discount": D("1.5")},
        ],
    )
    def test_invalid_overrides_are_rejected(self, kwargs: dict[str, Decimal]) -> None:
        with pytest.raises(ValueError, match="acme"):
            PriceOverride("acme", **kwargs)  # type: ignore[arg-type]


def test_cost_parts_add_up_and_serialise_exactly() -> None:
    cost = Cost(uncached_input=D("0.1"), cache_read=D("0.2"), cache_write=D("0.0000001"), output=D("3"))
    assert cost.total == D("3.3000001")
    assert cost.as_dict()["total_usd"] == "3.3000001"
    assert (cost + cost).total == D("6.6000002")


# -- agreement with the catalogue's own calculator -------------------------------------------------

CATALOGUE_MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-5"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-6"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
    ("mistral", "mistral-large-latest"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model=st.sampled_from(CATALOGUE_MODELS),
    uncached=st.integers(0, 400_000),
    read=st.integers(0, 300_000),
    write_5m=st.integers(0, 50_000),
    write_1h=st.integers(0, 50_000),
    output=st.integers(0, 100_000),
    day=st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31)),
    hour=st.integers(0, 23),
)
def test_every_cost_matches_the_catalogues_own_calculation(
    model: tuple[str, str], uncached: int, read: int, write_5m: int, write_1h: int, output: int, day: date, hour: int
) -> None:
    provider, name = model
    at = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    usage = Usage(
        input_tokens=uncached + read + write_5m + write_1h,
        cache_read_tokens=read,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        output_tokens=output,
    )
    ours = BOOK.price(usage, name, provider=provider, at=at).cost.total
    theirs = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=read,
            cache_write_tokens=write_5m + write_1h,
            cache_write_1h_tokens=write_1h,
            output_tokens=output,
        ),
        name,
        provider_id=provider,
        genai_request_timestamp=at,
    ).total_price
    assert ours == theirs


BOOK = PriceBook(catalogue=Catalogue())


def test_compute_cost_is_pure_arithmetic() -> None:
    rates = Rates.simple(D("2"), D("8"), cache_read_per_mtok=D("0.5"), cache_write_5m_per_mtok=D("2.5"))
    usage = Usage(input_tokens=1_000, cache_read_tokens=200, cache_write_5m_tokens=300, output_tokens=50)
    cost = compute_cost(usage, rates)
    assert cost == Cost(uncached_input=D("0.001"), cache_read=D("0.0001"), cache_write=D("0.00075"), output=D("0.0004"))
