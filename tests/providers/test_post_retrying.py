"""The one POST-and-retry helper (issue 9.4) that the embedding path and the budget alerts'
webhook share, over the in-memory transport: no server."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from thrifty.providers.retrying import Outcome, post_retrying
from thrifty.providers.transport import MemoryResponse, MemoryTransport, Timeouts, TransportError

TIMEOUTS = Timeouts(connect=1.0, total=5.0)


def _run(*answers: MemoryResponse | TransportError, attempts: int = 4) -> tuple[Outcome, list[float], list[str]]:
    plan = list(answers)
    slept: list[float] = []
    told: list[str] = []

    async def answer(url: str, body: bytes, headers: Mapping[str, str]) -> MemoryResponse:
        step = plan.pop(0)
        if isinstance(step, TransportError):
            raise step
        return step

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    outcome = asyncio.run(
        post_retrying(
            MemoryTransport(answer),
            "http://hook/x",
            b"{}",
            {},
            TIMEOUTS,
            attempts=attempts,
            backoff=lambda n: 0.1 * 2**n,
            sleep=sleep,
            on_retry=lambda problem, n, pause: told.append(f"{problem} #{n} {pause}"),
        )
    )
    return outcome, slept, told


def test_a_retryable_failure_is_retried_with_backoff_then_succeeds() -> None:
    refused = TransportError("connection refused", timeout=False, may_be_billed=False)
    outcome, slept, told = _run(MemoryResponse(status=503), refused, MemoryResponse(status=200, body=b"ok"))
    assert outcome.status == 200 and outcome.body == b"ok" and outcome.problem is None
    assert slept == [0.1, 0.2]
    assert told == ["answered 503 #1 0.1", "unreachable: connection refused #2 0.2"]
    assert [note["status"] for note in outcome.attempts] == [503, 502, 200]


def test_the_other_sides_wait_wins_over_the_backoff() -> None:
    outcome, slept, _ = _run(MemoryResponse(status=429, headers={"Retry-After": "2"}), MemoryResponse(status=204))
    assert outcome.status == 204 and slept == [2.0]


def test_a_client_error_is_answered_at_once_and_the_last_failure_is_kept() -> None:
    outcome, slept, _ = _run(MemoryResponse(status=400, body=b'{"error": "bad"}'))
    assert outcome.status == 400 and outcome.problem == "answered 400" and slept == []
    outcome, slept, _ = _run(*[MemoryResponse(status=500)] * 3, attempts=3)
    assert outcome.status == 500 and outcome.problem == "answered 500" and len(slept) == 2
