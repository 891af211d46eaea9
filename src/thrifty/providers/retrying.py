"""One way to POST and retry, for the callers whose every attempt is alike: the embedding path and
the budget alerts' webhook. A retryable status or a transport failure is tried again after the
other side's own wait (``Retry-After`` and the rate-limit reset headers) or the caller's backoff;
anything else is answered at once. (The chat dispatcher has more to weigh between attempts --
fallbacks, provider pacing, attempts the provider may have billed -- and keeps its own loop over
the same rules in ``core.retry``.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from thrifty.core.retry import is_retryable, provider_wait
from thrifty.providers.transport import Timeouts, Transport, TransportError

__all__ = ["Outcome", "post_retrying"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The last answer: its status (502 when nothing answered) and body, what went wrong if it is
    not a success, and a note for each attempt (status, ms, and the pause before the next)."""

    status: int
    body: bytes
    problem: str | None
    attempts: list[dict[str, Any]] = field(default_factory=list)


async def post_retrying(
    transport: Transport,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeouts: Timeouts,
    *,
    attempts: int,
    backoff: Callable[[int], float],
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    on_retry: Callable[[str, int, float], None] | None = None,
) -> Outcome:
    """POST ``body`` up to ``attempts`` times; ``backoff(n)`` is the pause after attempt ``n``
    when the other side names none; ``on_retry(problem, n, pause)`` is told before each pause."""
    notes: list[dict[str, Any]] = []
    status, raw, problem = 502, b"", "no attempt was made"
    for attempt in range(attempts):
        began = time.perf_counter()
        wait: float | None = None
        try:
            response = await transport.post(url, body, headers, timeouts)
            status, raw = response.status, await response.read()
            wait = provider_wait({k.lower(): v for k, v in response.headers.items()})
            problem = f"answered {status}"
            retryable = is_retryable(status)
        except TransportError as error:
            status, raw, problem, retryable = 502, b"", f"unreachable: {error}", True
        notes.append({"status": status, "ms": round((time.perf_counter() - began) * 1000)})
        if 200 <= status < 300:
            return Outcome(status, raw, None, notes)
        if not retryable or attempt + 1 == attempts:
            break
        pause = wait if wait is not None else backoff(attempt)
        notes[-1]["retry_in_s"] = round(pause, 3)
        if on_retry is not None:
            on_retry(problem, attempt + 1, pause)
        await sleep(pause)
    return Outcome(status, raw, problem, notes)
