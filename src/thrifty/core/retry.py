"""When to retry an upstream call, and how long to wait: pure functions over status and headers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUSES", "backoff_delay", "is_retryable", "provider_wait"]

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""Rate limits, overload and server errors; 409 is OpenAI's "lock timeout"; 529 Anthropic's overload."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES


def backoff_delay(attempt: int, base: float, cap: float, random: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return float(random() * min(cap, base * (2**attempt)))


def provider_wait(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the provider asks us to wait, from ``Retry-After`` (seconds or an HTTP date),
    ``retry-after-ms``, OpenAI's ``x-ratelimit-reset-*`` durations ("1s", "6m0s", "20ms") for the
    exhausted limit, or Anthropic's ``anthropic-ratelimit-*-reset`` times (RFC 3339).
    ``headers`` must have lower-case names. None when the provider says nothing."""
    now = now or datetime.now(UTC)
    value = headers.get("retry-after-ms")
    if value is not None:
        seconds = _float(value)
        if seconds is not None:
            return max(seconds / 1000.0, 0.0)
    value = headers.get("retry-after")
    if value is not None:
        seconds = _float(value)
        if seconds is None:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                seconds = (when - now).total_seconds() if when.tzinfo else None
        if seconds is not None:
            return max(seconds, 0.0)
    waits = []
    for kind in ("requests", "tokens"):
        if headers.get(f"x-ratelimit-remaining-{kind}") == "0":
            reset = headers.get(f"x-ratelimit-reset-{kind}")
            if reset is not None and (seconds := _duration(reset)) is not None:
                waits.append(seconds)
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        if headers.get(f"anthropic-ratelimit-{kind}-remaining") == "0":
            reset = headers.get(f"anthropic-ratelimit-{kind}-reset")
            if reset is not None and (seconds := _until(reset, now)) is not None:
                waits.append(seconds)
    return max(waits) if waits else None


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _duration(text: str) -> float | None:
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def _until(text: str, now: datetime) -> float | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
