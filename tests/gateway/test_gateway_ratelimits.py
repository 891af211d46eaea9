"""Rate limits through the gateway: requests and tokens per window, per user, key, team, model and
deployment; a call over the limit waits for room up to max_wait_s, else gets 429 with Retry-After;
a call that can never fit is refused at once; and pacing by the provider's own rate-limit headers
keeps calls from being refused upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.gateway import running_gateway
from tests.support.servers import ServerThread
from thrifty.simulator import SimulatorConfig, create_app
from thrifty.simulator.config import RateLimits

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]
NO_CACHE = {"exact": {"enabled": False}}


def limited(simulator_url: str, home: Path, limits: list[dict[str, Any]], **rate: Any) -> Any:
    return running_gateway(simulator_url, home, cache=NO_CACHE, rate_limits={"limits": limits, **rate})


def client(url: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, default_headers=headers)


def test_over_the_requests_limit_a_call_gets_429_with_retry_after(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "user", "requests_per_minute": 2}]
    with limited(simulator_url, tmp_path, limits, max_wait_s=0) as gateway:
        ann = client(gateway.url, **{"x-thrifty-user": "ann"})
        for _ in range(2):
            ann.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as refused:
            ann.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        body: Any = refused.value.body
        assert body["type"] == "rate_limit_error" and body["code"] == "rate_limit_exceeded"
        assert "user ann may use 2 requests per minute" in body["message"]
        assert 1 <= int(refused.value.response.headers["retry-after"]) <= 63  # a minute and a bucket at most
        # Each user has a limit of their own.
        client(gateway.url, **{"x-thrifty-user": "ben"}).chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,  # type: ignore[arg-type]
            max_tokens=5,
        )


def test_a_call_over_the_limit_waits_for_room_when_allowed(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "model", "value": "gpt-4o-mini", "requests_per_minute": 2, "window_s": 1}]
    with limited(simulator_url, tmp_path, limits, max_wait_s=3) as gateway:
        gpt = client(gateway.url)
        began = time.perf_counter()
        for _ in range(4):
            gpt.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        assert time.perf_counter() - began >= 0.9  # the third waited for the first to leave the window
        records = gateway.records(4)
        assert any("rate_limit_wait_s" in r.details for r in records)
        client(gateway.url).chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]


def test_a_call_that_can_never_fit_a_tokens_limit_is_refused_at_once(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "deployment", "value": "openai/gpt-4o", "tokens_per_minute": 100}]
    with limited(simulator_url, tmp_path, limits, max_wait_s=30) as gateway:
        gpt = client(gateway.url)
        began = time.perf_counter()
        with pytest.raises(openai.RateLimitError) as refused:
            gpt.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=200)  # type: ignore[arg-type]
        assert time.perf_counter() - began < 1
        body: Any = refused.value.body
        assert "can never fit" in body["message"] and "deployment openai/gpt-4o" in body["message"]
        assert "retry-after" not in refused.value.response.headers
        gpt.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=50)  # type: ignore[arg-type]
        gpt.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=500)  # type: ignore[arg-type]


@pytest.fixture
def strict_upstream() -> Iterator[str]:
    """A simulated provider allowing 1,200 tokens a minute per model (20 a second)."""
    config = SimulatorConfig(rate_limits=RateLimits(openai_tokens_per_minute=1200))
    server = ServerThread(create_app(config)).start()
    yield server.url
    server.stop()


@pytest.mark.parametrize("pacing", [True, False])
def test_provider_headers_pace_calls_before_the_provider_refuses(
    strict_upstream: str, tmp_path: Path, pacing: bool
) -> None:
    # 11 calls of ~15 input + 100 max tokens: ~1,265 tokens, just over the provider's 1,200 a minute.
    rate = {"limits": [], "provider_pacing": pacing, "pacing_max_wait_s": 10}
    with running_gateway(strict_upstream, tmp_path, cache=NO_CACHE, rate_limits=rate) as gateway:
        gpt = client(gateway.url)
        for _ in range(11):
            gpt.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=100)  # type: ignore[arg-type]
        records = gateway.records(11)
    refused_upstream = [a for r in records for a in r.details["attempts"] if a.get("status") == 429]
    if pacing:
        assert not refused_upstream
        assert any("provider_pacing_s" in r.details for r in records)
    else:
        assert refused_upstream  # without pacing the provider refuses, and the call is retried


def test_embeddings_are_counted_by_the_same_rate_limits_as_chat(simulator_url: str, tmp_path: Path) -> None:
    """Embeddings go through the pipeline's rate-limit step (issue 9): a user's chat and embedding
    calls share one requests-per-minute limit, and an embedding past it gets the same 429."""
    limits = [{"scope": "user", "requests_per_minute": 3}]
    with limited(simulator_url, tmp_path, limits, max_wait_s=0) as gateway:
        ann = client(gateway.url, **{"x-thrifty-user": "ann"})
        ann.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        ann.embeddings.create(model="text-embedding-3-small", input="one")
        ann.embeddings.create(model="text-embedding-3-small", input="two")
        with pytest.raises(openai.RateLimitError) as refused:
            ann.embeddings.create(model="text-embedding-3-small", input="three")
        body: Any = refused.value.body
        assert body["code"] == "rate_limit_exceeded" and "user ann may use 3 requests per minute" in body["message"]
        with pytest.raises(openai.RateLimitError):
            ann.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        client(gateway.url, **{"x-thrifty-user": "ben"}).embeddings.create(model="text-embedding-3-small", input="x")
