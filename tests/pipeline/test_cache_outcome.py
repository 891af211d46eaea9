"""How a call was answered travels back in the Result (issue 9.1): the exact cache learns whether an
inner step answered from the result it gets, never by reading the call back."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from thrifty.config.cache import ExactCacheSpec
from thrifty.core.pricing import PriceBook
from thrifty.pipeline.call import Attribution, Call, Result
from thrifty.pipeline.steps.cache import ExactCacheStep
from thrifty.stores.cache import LocalCache
from thrifty.wire.openai_chat import parse_openai_request

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0}
ANSWER = orjson.dumps({"id": "x", "object": "chat.completion", "choices": [], "model": "gpt-4o-mini"})


@pytest.fixture(scope="module")
def prices() -> PriceBook:
    return PriceBook()


def _call() -> Call:
    return Call(
        request_id="req_1",
        client_api="openai",
        body=dict(BODY),
        request=parse_openai_request(BODY),
        model="gpt-4o-mini",
        stream=False,
        attribution=Attribution(team="red"),
        ts=datetime.now(UTC),
        started=time.perf_counter(),
    )


def _run(step: ExactCacheStep, inner_status: str | None, meddle: bool = False) -> Result:
    async def inner(call: Call) -> Result:
        if meddle:
            call.cache_status = "semantic"  # type: ignore[misc]  # an inner step trying to write the call
        return Result(status=200, body=ANSWER, priced_as="gpt-4o-mini", cache_status=inner_status)

    return asyncio.run(step(_call(), inner))


def test_an_answer_from_an_inner_cache_is_not_stored_as_exact(tmp_path: Path, prices: PriceBook) -> None:
    step = ExactCacheStep(LocalCache(tmp_path / "cache.db"), ExactCacheSpec(), prices)
    assert _run(step, "semantic").cache_status == "semantic"
    assert _run(step, None).cache_status == "miss"  # the first plain answer: stored now
    assert _run(step, None).cache_status == "hit"


def test_an_inner_step_cannot_write_the_call(tmp_path: Path, prices: PriceBook) -> None:
    step = ExactCacheStep(LocalCache(tmp_path / "cache.db"), ExactCacheSpec(), prices)
    with pytest.raises(dataclasses.FrozenInstanceError):
        _run(step, None, meddle=True)  # the call is the request: immutable; answers come back in the Result
    assert _run(step, None).cache_status == "miss"
    assert _run(step, None).cache_status == "hit"


def test_a_bypassed_call_says_so_in_its_result(tmp_path: Path, prices: PriceBook) -> None:
    step = ExactCacheStep(LocalCache(tmp_path / "cache.db"), ExactCacheSpec(enabled=False), prices)
    assert _run(step, None).cache_status == "bypass"
