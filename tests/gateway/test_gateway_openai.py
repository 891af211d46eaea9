"""The gateway through the official openai SDK: every call priced exactly from the usage the
upstream reported, streamed or not, and recorded once."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from tests.support.gateway import RunningGateway, expected_cost
from thrifty.core.usage import Usage

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-needed", max_retries=0)


def test_a_call_is_priced_exactly_from_the_reported_usage(gateway: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO, max_tokens=40)
    completion = raw.parse()
    assert completion.usage is not None
    usage = Usage.from_openai(completion.usage.model_dump())
    (record,) = gateway.records(1)
    cost = expected_cost(usage, "gpt-4o", record)
    assert Decimal(raw.headers["x-thrifty-cost-usd"]) == cost
    assert raw.headers["x-thrifty-model"] == "gpt-4o"
    assert raw.headers["x-thrifty-cache"] == "bypass"  # sampled (no temperature): not cached by default
    assert raw.headers["x-thrifty-request-id"] == record.request_id
    assert record.usage == usage
    assert record.cost is not None and record.cost.total == cost
    assert record.status == "ok" and not record.stream
    assert record.latency_ms is not None and record.latency_ms > 0
    assert record.ttft_ms is not None and 0 < record.ttft_ms <= record.latency_ms


def test_a_stream_with_include_usage_gets_the_usage_chunk_and_the_same_cost(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, max_tokens=40, stream=True, stream_options={"include_usage": True}
        )
    )
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    usage = Usage.from_openai(final.usage.model_dump())
    (record,) = gateway.records(1)
    assert record.stream
    assert record.usage == usage
    assert record.cost is not None and record.cost.total == expected_cost(usage, "gpt-4o", record)
    assert record.ttft_ms is not None and record.ttft_ms <= record.latency_ms  # type: ignore[operator]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_stream_without_include_usage_is_still_priced_from_the_providers_usage(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    plain = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=40, stream=True))
    assert all(chunk.usage is None for chunk in plain)  # the client did not ask: it gets none
    assert all(chunk.choices for chunk in plain)
    with_usage = list(
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, max_tokens=40, stream=True, stream_options={"include_usage": True}
        )
    )
    assert with_usage[-1].usage is not None
    reported = Usage.from_openai(with_usage[-1].usage.model_dump())  # the simulator is deterministic
    first, second = gateway.records(2)
    assert first.usage == reported == second.usage
    assert first.details.get("usage_estimated") is None
    assert first.cost == second.cost


def test_tools_and_tool_calls_pass_through(gateway: RunningGateway, client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    (record,) = gateway.records(1)
    assert record.usage.output_tokens == completion.usage.completion_tokens  # type: ignore[union-attr]


def test_n_choices_and_json_mode_pass_through(gateway: RunningGateway, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, n=2, response_format={"type": "json_object"}, max_tokens=400
    )
    assert len(completion.choices) == 2
    json.loads(completion.choices[0].message.content or "")
    (record,) = gateway.records(1)
    assert record.usage.output_tokens == completion.usage.completion_tokens  # type: ignore[union-attr]


def test_prompt_caching_reported_by_the_provider_is_priced_at_the_cached_rate(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    long_prompt = [{"role": "system", "content": "policy " * 1500}, {"role": "user", "content": "Summarise."}]
    client.chat.completions.create(model="gpt-4o", messages=long_prompt, max_tokens=10)  # type: ignore[arg-type]
    second = client.chat.completions.create(model="gpt-4o", messages=long_prompt, max_tokens=10)  # type: ignore[arg-type]
    cached = second.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    assert cached >= 1024 and cached % 128 == 0
    _, record = gateway.records(2)
    assert record.usage.cache_read_tokens == cached
    assert record.cost is not None
    assert record.cost.cache_read == Decimal(cached) * Decimal("1.25") / 1_000_000
    assert record.cost.total == expected_cost(record.usage, "gpt-4o", record)


def test_embeddings_are_priced_and_recorded(gateway: RunningGateway, client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    assert len(result.data) == 2
    (record,) = gateway.records(1)
    assert record.usage.input_tokens == result.usage.prompt_tokens
    assert record.cost is not None
    assert record.cost.total == Decimal(result.usage.prompt_tokens) * Decimal("0.02") / 1_000_000


def test_attribution_from_headers_and_the_user_field(gateway: RunningGateway, client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        user="end-user-7",
        extra_headers={"x-thrifty-feature": "search", "x-thrifty-team": "growth", "x-thrifty-tags": "beta, eu"},
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_headers={"x-thrifty-user": "alice"})
    first, second = gateway.records(2)
    assert (first.user, first.team, first.feature, first.tags) == ("end-user-7", "growth", "search", ("beta", "eu"))
    assert second.user == "alice"


def test_models_health_and_readiness(gateway: RunningGateway, client: openai.OpenAI) -> None:
    names = {model.id for model in client.models.list()}
    assert {"gpt-4o", "claude-sonnet-4-5", "text-embedding-3-small"} <= names
    import httpx2

    health = httpx2.get(f"{gateway.url}/healthz").json()
    assert health["status"] == "ok" and health["keys"]["required"] is False
    assert "no virtual key was ever created" in health["keys"]["why"]
    ready = httpx2.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
