"""Retries, fallbacks, a larger-context model, and streams that end early: each call recorded once,
priced from what the provider billed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import openai
import pytest

from tests.support.gateway import RunningGateway, expected_cost, running_gateway
from thrifty.core.usage import Usage

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-needed", max_retries=0)


def test_a_429_is_retried_after_the_providers_wait(gateway: RunningGateway, client: openai.OpenAI) -> None:
    gateway.fault("gpt-4o", "429;retry-after=0.2", times=1)
    began = time.perf_counter()
    completion = client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=20)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - began
    assert completion.choices[0].message.content
    assert elapsed >= 0.2  # Retry-After honoured, not the (shorter) configured backoff
    (record,) = gateway.records(1)  # one call, one row, however many attempts
    assert [a.get("status") for a in record.details["attempts"]] == [429, 200]
    assert record.details["attempts"][0]["retry_in_s"] == 0.2
    assert record.served_model == "gpt-4o"
    assert record.cost is not None and record.cost.total == expected_cost(record.usage, "gpt-4o", record)


def test_persistent_5xx_falls_back_to_the_next_model(gateway: RunningGateway, client: openai.OpenAI) -> None:
    gateway.fault("gpt-4o", "500", times=3)  # every attempt on gpt-4o fails
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO, max_tokens=20)  # type: ignore[arg-type]
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    (record,) = gateway.records(1)
    assert record.requested_model == "gpt-4o" and record.served_model == "gpt-4o-mini"
    statuses = [(a["model"], a.get("status")) for a in record.details["attempts"]]
    assert statuses == [("gpt-4o", 500)] * 3 + [("gpt-4o-mini", 200)]
    assert record.cost is not None  # priced at the model that answered
    assert record.cost.total == expected_cost(record.usage, "gpt-4o-mini", record)


def test_a_provider_asking_for_a_long_wait_sends_the_call_to_a_fallback_at_once(
    simulator_url: str, tmp_path: Path
) -> None:
    with running_gateway(simulator_url, tmp_path, retry={"attempts": 3, "retry_after_max_s": 1.0}) as gateway:
        gateway.fault("gpt-4o", "429;retry-after=30", times=1)
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        began = time.perf_counter()
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO, max_tokens=10)  # type: ignore[arg-type]
        assert time.perf_counter() - began < 5
        assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"


def test_when_every_model_fails_the_client_gets_the_error_and_it_is_recorded(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    gateway.fault("gpt-4o-mini", "503", times=3)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)  # type: ignore[arg-type]
    (record,) = gateway.records(1)
    assert record.status == "error" and record.http_status == 503
    assert record.cost is not None and record.cost.total == 0  # refused calls are not billed: a known zero
    assert len(record.details["attempts"]) == 3


def test_a_client_error_is_not_retried(gateway: RunningGateway, client: openai.OpenAI) -> None:
    gateway.fault("gpt-4o-mini", "400", times=1)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)  # type: ignore[arg-type]
    (record,) = gateway.records(1)
    assert len(record.details["attempts"]) == 1


def test_a_request_too_long_for_the_window_goes_to_a_larger_model(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    long = [{"role": "user", "content": "word " * 400}]
    raw = client.chat.completions.with_raw_response.create(model="tiny-window", messages=long, max_tokens=10)  # type: ignore[arg-type]
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    (record,) = gateway.records(1)
    assert "context_fallback" in record.details


def test_a_stream_dropped_midway_by_the_provider_is_priced_from_what_was_generated(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    gateway.fault("gpt-4o", "drop-after=4", times=1)
    received = []
    stream = client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=200, stream=True)  # type: ignore[arg-type]

    def consume() -> None:
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError):  # the gateway ends the stream with an error event
        consume()
    (record,) = gateway.records(1)
    assert record.status == "upstream_error"
    assert record.details["usage_estimated"] is True
    assert record.usage.input_tokens > 0
    assert record.usage.output_tokens >= len([t for t in received if t])
    assert record.cost is not None and record.cost.total > 0


def test_a_client_that_disconnects_midway_stops_the_upstream_and_is_priced(gateway: RunningGateway) -> None:
    gateway.fault("gpt-4o", "chunk-delay=30", times=1)
    body = {"model": "gpt-4o", "messages": HELLO, "max_tokens": 300, "stream": True}
    with httpx2.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        lines = 0
        for line in response.iter_lines():
            if line.startswith("data: "):
                lines += 1
            if lines == 5:
                break  # leave mid-stream
    (record,) = gateway.records(1)
    assert record.status == "client_disconnected"
    assert record.details["usage_estimated"] is True
    assert 1 <= record.usage.output_tokens < 300  # the rest was never generated nor billed
    assert record.cost is not None and record.cost.total > 0
    assert record.latency_ms is not None and record.latency_ms < 300 * 30  # stopped early, did not wait it out


def test_an_unreachable_upstream_is_a_502_in_the_clients_shape(simulator_url: str, tmp_path: Path) -> None:
    providers = {
        "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},  # nothing listens on port 9
        "anthropic": {"kind": "anthropic", "base_url": simulator_url},
    }
    with running_gateway(simulator_url, tmp_path, providers=providers) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
        assert raised.value.status_code == 502
        assert "unreachable" in str(raised.value)
        (record,) = gateway.records(1)
        assert record.status == "error"


def test_an_attempt_that_hangs_times_out_and_the_retry_answers(simulator_url: str, tmp_path: Path) -> None:
    """The provider works on (and bills) an attempt thrifty gave up waiting for: it gets a row of
    its own, its input priced as a lower bound, besides the call's row."""
    retry = {"attempts": 2, "attempt_timeout_s": 0.5, "backoff_base_s": 0.01, "backoff_max_s": 0.02}
    with running_gateway(simulator_url, tmp_path, retry=retry) as gateway:
        gateway.fault("gpt-4o-mini", "timeout", times=1)
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        began = time.perf_counter()
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        assert completion.choices[0].message.content
        assert 0.5 <= time.perf_counter() - began < 5
        rows = gateway.records(2)
    (lost,) = [r for r in rows if r.status == "timeout"]
    (answered,) = [r for r in rows if r.status == "ok"]
    assert len(rows) == 2 and lost.request_id == answered.request_id
    first, second = answered.details["attempts"]
    assert "error" in first and first["cost_lower_bound"] is True and second["status"] == 200
    # Priced at what is known: the input the provider read (counted as the provider counts it).
    assert lost.details["cost_lower_bound"] is True
    assert lost.usage == Usage(input_tokens=answered.usage.input_tokens)
    assert lost.cost is not None and lost.cost.total > 0
    assert lost.cost.total == expected_cost(lost.usage, "gpt-4o-mini", lost)
    assert lost.served_model == "gpt-4o-mini" and lost.provider == "openai"


def test_a_call_whose_every_attempt_times_out_is_not_recorded_as_free(simulator_url: str, tmp_path: Path) -> None:
    retry = {"attempts": 2, "attempt_timeout_s": 0.3, "backoff_base_s": 0.01, "backoff_max_s": 0.02}
    with running_gateway(simulator_url, tmp_path, retry=retry) as gateway:
        gateway.fault("gpt-4o-mini", "timeout", times=2)
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        assert raised.value.status_code == 502
        rows = gateway.records(3)
    lost = [r for r in rows if r.status == "timeout"]
    (call,) = [r for r in rows if r.status == "error"]
    assert len(rows) == 3 and len(lost) == 2
    assert all(r.cost is not None and r.cost.total > 0 and r.details["cost_lower_bound"] for r in lost)
    assert "no answer within 0.3 s" in (call.error or "")


def test_a_whole_response_cut_short_is_retried_as_the_policy_says(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    """The body stops half-way (the connection closes before Content-Length bytes came): the
    provider answered, so it billed; the retry policy applies as to a 5xx."""

    def dropped() -> int:
        stats = httpx2.get(f"{gateway.simulator_url}/_simulator/stats").json()
        return int(stats["faults"].get("gpt-4o-mini", {}).get("drop-after=1", 0))

    before = dropped()
    gateway.fault("gpt-4o-mini", "drop-after=1", times=2)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)  # type: ignore[arg-type]
    assert completion.choices[0].message.content
    rows = gateway.records(3)
    cut = [r for r in rows if r.status == "incomplete"]
    (answered,) = [r for r in rows if r.status == "ok"]
    assert len(rows) == 3 and len(cut) == 2
    attempts = answered.details["attempts"]
    assert len(attempts) == 3 and attempts[-1]["status"] == 200
    assert all("cut short" in a["error"] for a in attempts[:2])
    assert all(r.cost is not None and r.cost.total > 0 and r.details["cost_lower_bound"] for r in cut)
    assert dropped() - before == 2  # the simulator did cut both bodies short


def test_azure_style_deployments(simulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TEST_KEY", "azure-secret")
    providers = {
        "azure": {
            "kind": "azure",
            "base_url": simulator_url,
            "api_key_env": "AZURE_TEST_KEY",
            "api_version": "2024-10-21",
        },
        "anthropic": {"kind": "anthropic", "base_url": simulator_url},
    }
    models = [{"name": "gpt-4o", "provider": "azure", "upstream_model": "prod-gpt4o", "price_as": "gpt-4o"}]
    with running_gateway(simulator_url, tmp_path, providers=providers, models=models) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        (record,) = gateway.records(1)
    assert record.details["upstream_model"] == "prod-gpt4o"
    assert record.usage.output_tokens == completion.usage.completion_tokens  # type: ignore[union-attr]
    assert record.cost is not None and record.cost.total == expected_cost(record.usage, "gpt-4o", record)
    stats = httpx2.get(f"{simulator_url}/_simulator/stats").json()
    assert any("deployments" in path for path in str(stats).split("'"))
