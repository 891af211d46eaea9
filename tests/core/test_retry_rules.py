"""When to retry and how long to wait: the providers' own headers first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thrifty.core.retry import backoff_delay, is_retryable, provider_wait

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "150"}, 0.15),
        ({"retry-after": "Sun, 22 Nov 2026 12:00:05 GMT"}, 5.0),
        ({"retry-after": "Sun, 22 Nov 2026 11:00:00 GMT"}, 0.0),  # in the past: go now
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30s"}, 90.0),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "20ms"}, 0.02),
        (
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "2s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "6m0s",
            },
            360.0,
        ),
        ({"x-ratelimit-remaining-requests": "10", "x-ratelimit-reset-requests": "1s"}, None),  # not exhausted
        (
            {
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": (NOW + timedelta(seconds=12)).isoformat().replace("+00:00", "Z"),
            },
            12.0,
        ),
        ({"retry-after": "soon"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "banana"}, None),
        ({}, None),
    ],
)
def test_provider_wait(headers: dict[str, str], wait: float | None) -> None:
    result = provider_wait(headers, NOW)
    if wait is None:
        assert result is None
    else:
        assert result == pytest.approx(wait)


@given(st.integers(0, 20), st.floats(0, 1))
def test_backoff_is_full_jitter_capped(attempt: int, draw: float) -> None:
    delay = backoff_delay(attempt, 0.25, 8.0, lambda: draw)
    assert 0 <= delay <= min(8.0, 0.25 * 2**attempt)
    assert delay == pytest.approx(draw * min(8.0, 0.25 * 2**attempt))


def test_which_statuses_are_retried() -> None:
    assert all(is_retryable(s) for s in (429, 500, 502, 503, 504, 529))
    assert not any(is_retryable(s) for s in (400, 401, 403, 404, 413, 422))
