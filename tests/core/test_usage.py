"""Usage is normalised once per provider: the cached-token rules that other gateways get wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thrifty.core.usage import Usage, UsageError


def test_openai_prompt_tokens_already_include_cached_tokens() -> None:
    usage = Usage.from_openai(
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 128},
        }
    )
    assert usage.input_tokens == 2006
    assert usage.cache_read_tokens == 1920
    assert usage.uncached_input_tokens == 86
    assert usage.cache_write_tokens == 0
    assert usage.output_tokens == 300
    assert usage.reasoning_tokens == 128


def test_openai_responses_api_shape() -> None:
    usage = Usage.from_openai(
        {
            "input_tokens": 1500,
            "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": 90,
            "output_tokens_details": {"reasoning_tokens": 40},
        }
    )
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens, usage.reasoning_tokens) == (
        1500,
        1024,
        90,
        40,
    )


def test_anthropic_input_tokens_exclude_cache_reads_and_writes() -> None:
    usage = Usage.from_anthropic(
        {
            "input_tokens": 50,
            "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": 10000,
            "output_tokens": 400,
        }
    )
    assert usage.input_tokens == 13050
    assert usage.uncached_input_tokens == 50
    assert usage.cache_read_tokens == 10000
    assert usage.cache_write_5m_tokens == 3000  # no TTL split given: the default 5 minutes
    assert usage.cache_write_1h_tokens == 0


def test_anthropic_cache_writes_split_by_ttl() -> None:
    usage = Usage.from_anthropic(
        {
            "input_tokens": 10,
            "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
            "output_tokens": 5,
        }
    )
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (1000, 2000)
    assert usage.input_tokens == 3010


def test_missing_and_null_fields_count_as_zero() -> None:
    assert Usage.from_openai({"prompt_tokens": 5, "prompt_tokens_details": None}) == Usage(input_tokens=5)
    assert Usage.from_anthropic({"input_tokens": 7, "cache_read_input_tokens": None}) == Usage(input_tokens=7)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"prompt_tokens": -1}, "must not be negative"),
        ({"prompt_tokens": "12"}, "whole number"),
        ({"prompt_tokens": 1.5}, "whole number"),
        ({"prompt_tokens": True}, "whole number"),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}}, "exceed the total input"),
        ({"prompt_tokens": 1, "prompt_tokens_details": []}, "must be an object"),
        ({"completion_tokens": 1, "completion_tokens_details": {"reasoning_tokens": 2}}, "reasoning_tokens"),
    ],
)
def test_impossible_usage_is_rejected(raw: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Usage.from_openai(raw)


counts = st.integers(0, 10**9)


@given(counts, counts, counts, counts, counts)
def test_anthropic_total_is_the_sum_of_its_parts(plain: int, read: int, write: int, out: int, h1: int) -> None:
    h1 = min(h1, write)
    usage = Usage.from_anthropic(
        {
            "input_tokens": plain,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write,
            "cache_creation": {"ephemeral_1h_input_tokens": h1, "ephemeral_5m_input_tokens": write - h1},
            "output_tokens": out,
        }
    )
    assert usage.input_tokens == plain + read + write
    assert usage.uncached_input_tokens == plain
    assert usage.cache_write_tokens == write
    assert usage.cache_write_1h_tokens == h1


@given(st.lists(st.tuples(counts, counts, counts), min_size=1, max_size=5))
def test_usages_add_field_by_field(parts: list[tuple[int, int, int]]) -> None:
    usages = [Usage(input_tokens=a + b, cache_read_tokens=b, output_tokens=c) for a, b, c in parts]
    total = usages[0]
    for usage in usages[1:]:
        total = total + usage
    assert total.input_tokens == sum(a + b for a, b, _ in parts)
    assert total.cache_read_tokens == sum(b for _, b, _ in parts)
    assert total.output_tokens == sum(c for _, _, c in parts)
