"""Fault injection (header, admin queue, config), rate limits and the admin endpoints, seen
through the official SDKs."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import anthropic
import httpx2
import openai
import pytest

from thrifty.core.tokens.counter import TokenCounter
from thrifty.simulator import BackgroundSimulator, FaultSpec, RateLimits, SimulatorConfig

GPT = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-6"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture(scope="module")
def server(counter: TokenCounter) -> Iterator[BackgroundSimulator]:
    with BackgroundSimulator(counter=counter) as running:
        yield running


@pytest.fixture
def oai(server: BackgroundSimulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


@pytest.fixture
def ant(server: BackgroundSimulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant", max_retries=0)


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    conn.request(method, path, body=None if body is None else json.dumps(body))
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def fault(name: str) -> dict[str, str]:
    return {"x-simulator-fault": name}


def test_rate_limit_fault(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model=GPT, messages=HI, extra_headers=fault("429;retry-after=0.25"))
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "0.25"
    assert error.code == "rate_limit_exceeded"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    with pytest.raises(anthropic.RateLimitError) as anthropic_caught:
        ant.messages.create(model=CLAUDE, max_tokens=5, messages=HI, extra_headers=fault("429;retry-after=1"))
    body = anthropic_caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert anthropic_caught.value.response.headers["retry-after"] == "1"
    assert anthropic_caught.value.request_id is not None


def test_quota_fault(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model=GPT, messages=HI, extra_headers=fault("quota"))
    assert caught.value.code == "insufficient_quota"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_faults(oai: openai.OpenAI, ant: anthropic.Anthropic, status: int) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(model=GPT, messages=HI, extra_headers=fault(str(status)))
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "server_error"
    with pytest.raises(anthropic.InternalServerError) as anthropic_caught:
        ant.messages.create(model=CLAUDE, max_tokens=5, messages=HI, extra_headers=fault(str(status)))
    assert anthropic_caught.value.status_code == status
    assert anthropic_caught.value.body["error"]["type"] == "api_error"


def test_overloaded_fault(ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError) as caught:
        ant.messages.create(model=CLAUDE, max_tokens=5, messages=HI, extra_headers=fault("529"))
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_delay_fault(oai: openai.OpenAI) -> None:
    started = time.perf_counter()
    completion = oai.chat.completions.create(model=GPT, messages=HI, extra_headers=fault("delay=150"))
    assert time.perf_counter() - started >= 0.15
    assert completion.choices[0].message.content


def test_chunk_delay_fault(oai: openai.OpenAI) -> None:
    started = time.perf_counter()
    stream = oai.chat.completions.create(
        model=GPT,
        messages=HI,
        max_tokens=4,
        stream=True,
        extra_headers=fault("chunk-delay=30"),
    )
    chunks = list(stream)
    assert len(chunks) == 6  # role, 4 tokens, finish
    assert time.perf_counter() - started >= 6 * 0.03


def test_dropped_connection(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model=GPT, messages=HI, extra_headers=fault("drop-after=1"))
    received = []
    stream = oai.chat.completions.create(model=GPT, messages=HI, stream=True, extra_headers=fault("drop-after=3"))
    with pytest.raises(openai.APIConnectionError):
        received.extend(stream)
    assert len(received) == 3
    assert received[-1].choices[0].finish_reason is None
    # The Anthropic SDK lets the transport's error through a stream (it does not wrap it).
    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)),
        ant.messages.stream(model=CLAUDE, max_tokens=50, messages=HI, extra_headers=fault("drop-after=3")) as stream,
    ):
        stream.get_final_message()
    with pytest.raises(anthropic.APIConnectionError):
        ant.messages.create(model=CLAUDE, max_tokens=5, messages=HI, extra_headers=fault("drop-after=0"))


def test_timeout_fault(oai: openai.OpenAI, server: BackgroundSimulator) -> None:
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.3).chat.completions.create(model=GPT, messages=HI, extra_headers=fault("timeout"))
    assert 0.3 <= time.perf_counter() - started < 2
    assert oai.chat.completions.create(model=GPT, messages=HI).choices


def test_timeout_gives_up_after_its_limit(counter: TokenCounter) -> None:
    with BackgroundSimulator(SimulatorConfig(timeout_fault_max_s=0.2), counter=counter) as short:
        client = openai.OpenAI(base_url=short.openai_base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=GPT, messages=HI, extra_headers=fault("timeout"))
        assert caught.value.status_code == 504


def test_bad_fault_header(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="x-simulator-fault"):
        oai.chat.completions.create(model=GPT, messages=HI, extra_headers=fault("explode"))


def test_admin_queue_fails_first_attempt_then_retry_succeeds(server: BackgroundSimulator) -> None:
    model = "queued-model"
    status, queued = call(server.url, "POST", "/_simulator/faults", {"model": model, "fault": "429;retry-after=0.01"})
    assert status == 201
    assert queued["queued"] == [{"model": model, "fault": "429;retry-after=0.01", "remaining": 1}]
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=2)
    assert client.chat.completions.create(model=model, messages=HI).choices
    status, stats = call(server.url, "GET", "/_simulator/stats")
    assert status == 200
    assert stats["by_model"][model] == {"/v1/chat/completions": 2}
    assert stats["faults"][model] == {"429;retry-after=0.01": 1}
    assert stats["queued_faults"] == []
    # Anthropic: two overloads, then success, all inside the SDK's retries.
    call(
        server.url,
        "POST",
        "/_simulator/faults",
        {"model": "queued-claude", "fault": "529;retry-after=0.01", "times": 2},
    )
    ant = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=2)
    assert ant.messages.create(model="queued-claude", max_tokens=5, messages=HI).content
    stats = call(server.url, "GET", "/_simulator/stats")[1]
    assert stats["by_model"]["queued-claude"] == {"/v1/messages": 3}


def test_admin_queue_clear_and_wildcard(server: BackgroundSimulator) -> None:
    call(server.url, "POST", "/_simulator/faults", {"model": "cleared-model", "fault": "500", "times": 3})
    status, listing = call(server.url, "GET", "/_simulator/faults")
    assert status == 200
    assert {"model": "cleared-model", "fault": "500", "remaining": 3} in listing["queued"]
    assert call(server.url, "DELETE", "/_simulator/faults")[1] == {"cleared": 3}
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    assert client.chat.completions.create(model="cleared-model", messages=HI).choices
    call(server.url, "POST", "/_simulator/faults", {"fault": {"status": 503}})  # any model
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert client.embeddings.create(model="text-embedding-3-small", input="x").data
    assert call(server.url, "POST", "/_simulator/faults", {"fault": "nonsense"})[0] == 400
    assert call(server.url, "POST", "/_simulator/faults", {"fault": "500", "times": 0})[0] == 400
    assert call(server.url, "POST", "/_simulator/faults", {"fault": "500", "extra": 1})[0] == 400
    assert call(server.url, "GET", "/_simulator/nothing")[0] == 404
    assert call(server.url, "GET", "/_simulator/health")[1]["status"] == "ok"


def test_configured_faults(counter: TokenCounter) -> None:
    config = SimulatorConfig.model_validate(
        {
            "faults": {
                "down-model": "503",
                "flaky-model": "500;rate=0.5",
                "slow-model": {"delay_ms": 100},
            }
        }
    )
    assert config.faults["flaky-model"] == FaultSpec(status=500, rate=0.5)
    with BackgroundSimulator(config, counter=counter) as faulty:
        client = openai.OpenAI(base_url=faulty.openai_base_url, api_key="k", max_retries=0)
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="down-model", messages=HI)
        outcomes = []
        for _ in range(6):
            try:
                client.chat.completions.create(model="flaky-model", messages=HI)
                outcomes.append("ok")
            except openai.InternalServerError:
                outcomes.append("500")
        assert outcomes == ["ok", "500"] * 3  # exactly half, spread evenly
        started = time.perf_counter()
        client.chat.completions.create(model="slow-model", messages=HI)
        assert time.perf_counter() - started >= 0.1
        assert client.chat.completions.create(model="healthy-model", messages=HI).choices


def test_rate_limits_are_reported_and_enforced(counter: TokenCounter) -> None:
    limits = RateLimits(openai_requests_per_minute=3, anthropic_requests_per_minute=2)
    with BackgroundSimulator(SimulatorConfig(rate_limits=limits), counter=counter) as limited:
        client = openai.OpenAI(base_url=limited.openai_base_url, api_key="k", max_retries=0)
        remaining = []
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(model=GPT, messages=HI)
            assert raw.headers["x-ratelimit-limit-requests"] == "3"
            remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
        assert remaining == [2, 1, 0]
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=GPT, messages=HI)
        assert caught.value.code == "rate_limit_exceeded"
        assert int(caught.value.response.headers["retry-after"]) >= 1
        assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
        assert client.chat.completions.create(model="gpt-4.1", messages=HI).choices  # buckets are per model

        ant = anthropic.Anthropic(base_url=limited.anthropic_base_url, api_key="k", max_retries=0)
        raw_message = ant.messages.with_raw_response.create(model=CLAUDE, max_tokens=5, messages=HI)
        headers = raw_message.headers
        assert headers["anthropic-ratelimit-requests-limit"] == "2"
        assert headers["anthropic-ratelimit-requests-remaining"] == "1"
        reset = datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00"))
        assert reset.timestamp() > time.time()
        ant.messages.create(model=CLAUDE, max_tokens=5, messages=HI)
        with pytest.raises(anthropic.RateLimitError) as anthropic_caught:
            ant.messages.create(model=CLAUDE, max_tokens=5, messages=HI)
        assert anthropic_caught.value.body["error"]["type"] == "rate_limit_error"


def test_stats_and_reset(counter: TokenCounter) -> None:
    with BackgroundSimulator(counter=counter) as fresh:
        client = openai.OpenAI(base_url=fresh.openai_base_url, api_key="k", max_retries=0)
        client.chat.completions.create(model=GPT, messages=HI)
        client.embeddings.create(model="text-embedding-3-small", input="x")
        client.models.list()
        stats = call(fresh.url, "GET", "/_simulator/stats")[1]
        assert stats["total"] == 3
        assert stats["by_path"] == {"/v1/chat/completions": 1, "/v1/embeddings": 1, "/v1/models": 1}
        assert stats["by_model"][GPT] == {"/v1/chat/completions": 1}
        assert call(fresh.url, "POST", "/_simulator/reset")[1] == {"reset": True}
        assert call(fresh.url, "GET", "/_simulator/stats")[1]["total"] == 0
