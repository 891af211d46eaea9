"""The dispatcher over the transport seam (issue 9.4): retries, the provider's wait, fallbacks,
timeouts and broken streams, driven by an in-memory transport, with no server at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline.call import Attribution, Call
from thrifty.pipeline.steps.dispatch import Dispatcher, RetryPolicy, Route, Routes
from thrifty.providers.transport import MemoryResponse, MemoryTransport, TransportError
from thrifty.providers.upstream import Upstream
from thrifty.wire.openai_chat import parse_openai_request

POLICY = RetryPolicy(
    attempts=3, attempt_timeout=5.0, connect_timeout=1.0, backoff_base=0.01, backoff_max=0.05, retry_after_max=2.0
)


def _route(name: str, fallbacks: tuple[str, ...] = ()) -> Route:
    upstream = Upstream("mem", "openai", "http://memory/v1", {"authorization": "Bearer sk-mem"})
    return Route(name, upstream, name, name, None, None, fallbacks, frozenset())


ROUTES = Routes([_route("gpt-4o", ("gpt-4o-mini",)), _route("gpt-4o-mini")])


def _call(model: str = "gpt-4o", stream: bool = False) -> Call:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    if stream:
        body["stream"] = True
    return Call(
        request_id="req_test",
        client_api="openai",
        body=body,
        request=parse_openai_request(body),
        model=model,
        stream=stream,
        attribution=Attribution(),
        ts=datetime.now(UTC),
        started=time.perf_counter(),
    )


def _completion(model: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        }
    )


def _model(body: bytes) -> str:
    return str(orjson.loads(body)["model"])


class Script:
    """Answers by model: a list of what each successive request to it gets."""

    def __init__(self, **plans: list[MemoryResponse | TransportError]) -> None:
        self.plans = {model.replace("_", "-"): list(plan) for model, plan in plans.items()}

    async def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> MemoryResponse:
        model = _model(body)
        plan = self.plans.get(model) or []
        step = plan.pop(0) if plan else MemoryResponse(body=_completion(model))
        if isinstance(step, TransportError):
            raise step
        return step


def _dispatcher(transport: MemoryTransport, slept: list[float]) -> Dispatcher:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return Dispatcher(ROUTES, transport, POLICY, TokenCounter(), random_source=lambda: 0.5, sleep=sleep)


def test_persistent_5xx_is_retried_then_falls_back() -> None:
    transport = MemoryTransport(Script(gpt_4o=[MemoryResponse(status=500, body=b"{}")] * 3))
    slept: list[float] = []
    call = _call()
    result = asyncio.run(_dispatcher(transport, slept)(call))
    assert result.status == 200 and result.served_model == "gpt-4o-mini"
    assert [_model(body) for _, body, _ in transport.sent] == ["gpt-4o"] * 3 + ["gpt-4o-mini"]
    assert [(a["model"], a.get("status")) for a in call.details["attempts"]] == [("gpt-4o", 500)] * 3 + [
        ("gpt-4o-mini", 200)
    ]
    assert len(slept) == 2  # two pauses between three attempts; none before the fallback
    assert transport.sent[0][2]["authorization"] == "Bearer sk-mem"


def test_the_providers_wait_is_honoured() -> None:
    wait = MemoryResponse(status=429, body=b"{}", headers={"retry-after": "0.7"})
    transport = MemoryTransport(Script(gpt_4o_mini=[wait]))
    slept: list[float] = []
    result = asyncio.run(_dispatcher(transport, slept)(_call("gpt-4o-mini")))
    assert result.status == 200 and slept == [0.7]


def test_a_refused_connection_is_not_billed_and_a_timeout_may_be() -> None:
    refused = TransportError("connection refused", timeout=False, may_be_billed=False)
    timed_out = TransportError("read timed out", timeout=True, may_be_billed=True)
    transport = MemoryTransport(Script(gpt_4o_mini=[refused, timed_out, refused]))
    call = _call("gpt-4o-mini")
    result = asyncio.run(_dispatcher(transport, [])(call))
    assert result.status == 502 and not result.billed
    errors = [a["error"] for a in call.details["attempts"]]
    assert errors == ["connection refused", "read timed out", "connection refused"]
    assert b"upstream unreachable: connection refused" in (result.body or b"")


def test_a_non_retryable_error_is_answered_at_once() -> None:
    transport = MemoryTransport(Script(gpt_4o_mini=[MemoryResponse(status=400, body=b'{"error": {"message": "bad"}}')]))
    result = asyncio.run(_dispatcher(transport, [])(_call("gpt-4o-mini")))
    assert result.status == 400 and len(transport.sent) == 1 and b"bad" in (result.body or b"")


def test_a_stream_that_breaks_ends_with_an_error_event_and_closes_the_upstream() -> None:
    chunk = orjson.dumps(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": "hel"}, "finish_reason": None}],
        }
    )
    broken = MemoryResponse(chunks=[b"data: " + chunk + b"\n\n", b"data: " + chunk + b"\n\n"], fail_after=1)
    transport = MemoryTransport(Script(gpt_4o_mini=[broken]))
    call = _call("gpt-4o-mini", stream=True)

    async def read() -> list[bytes]:
        result = await _dispatcher(transport, [])(call)
        assert result.events is not None and result.stream_state is not None
        out = [piece async for piece in result.events]
        assert result.stream_state.error is not None and "stream broke" in result.stream_state.error
        return out

    out = asyncio.run(read())
    assert b"hel" in out[0] and b"stream_error" in out[-1]
    assert broken.closed  # closing, not releasing: the provider stops generating


@pytest.mark.parametrize("status", [502, 503])
def test_a_retryable_status_then_success_keeps_the_first_model(status: int) -> None:
    transport = MemoryTransport(Script(gpt_4o=[MemoryResponse(status=status, body=b"{}")]))
    result = asyncio.run(_dispatcher(transport, [])(_call()))
    assert result.status == 200 and result.served_model == "gpt-4o" and len(transport.sent) == 2
