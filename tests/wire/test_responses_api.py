"""OpenAI's Responses API (issue 9's done-means): ``gpt.responses.create``, whole and streamed,
through the gateway and through ``thrifty.wrap``, priced and recorded like chat calls; Claude
models too; what has no chat equivalent is a 400 naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

import thrifty
from tests.support.gateway import RunningGateway, expected_cost
from thrifty.core.messages import RequestError
from thrifty.core.usage import Usage
from thrifty.stores.ledger import open_ledger
from thrifty.wire.openai_responses import responses_to_chat

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def _usage(response: Any) -> Usage:
    usage = response.usage
    return Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.input_tokens_details.cached_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.output_tokens_details.reasoning_tokens,
    )


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_a_response_is_served_priced_and_recorded(gateway: RunningGateway, gpt: openai.OpenAI, model: str) -> None:
    raw = gpt.responses.with_raw_response.create(
        model=model, instructions="Answer briefly.", input="Say hello to the gateway.", max_output_tokens=2000
    )
    response = raw.parse()
    assert response.object == "response" and response.status == "completed" and response.output_text
    assert response.output[0].type == "message" and response.model
    (record,) = gateway.records(1)
    assert record.requested_model == model and record.details["endpoint"] == "responses"
    assert record.usage == _usage(response) and record.usage.output_tokens > 0
    assert record.cost is not None and record.cost.total == expected_cost(record.usage, model, record)
    assert raw.headers["x-thrifty-cost-usd"]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_a_streamed_response_ends_with_its_usage_and_is_priced(
    gateway: RunningGateway, gpt: openai.OpenAI, model: str
) -> None:
    with gpt.responses.stream(model=model, input="Tell me about streams.", max_output_tokens=2000) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas and "".join(deltas) == final.output_text
    assert final.status == "completed" and final.usage is not None
    (record,) = gateway.records(1)
    assert record.stream and record.usage == _usage(final)
    assert record.cost is not None and record.cost.total == expected_cost(record.usage, model, record)


def test_events_come_in_order_with_sequence_numbers(gpt: openai.OpenAI) -> None:
    events = list(gpt.responses.create(model="gpt-4o-mini", input="Count to three.", stream=True))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    for needed in ("response.output_item.added", "response.output_text.delta", "response.output_item.done"):
        assert needed in kinds


def test_function_calls_and_their_outputs(gateway: RunningGateway, gpt: openai.OpenAI) -> None:
    first = gpt.responses.create(
        model="gpt-4o-mini",
        input="What is the weather in Lisbon? Use get_weather.",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    follow_up = gpt.responses.create(
        model="gpt-4o-mini",
        input=[
            {"role": "user", "content": "What is the weather in Lisbon?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 21}'},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert follow_up.status == "completed"
    assert len(gateway.records(2)) == 2


def test_a_truncated_answer_is_incomplete(gpt: openai.OpenAI) -> None:
    response = gpt.responses.create(model="gpt-4o-mini", input="Write a long essay about tides.", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"


def test_json_schema_output(gpt: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    response = gpt.responses.create(
        model="gpt-4o-mini",
        input="A city as JSON.",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    assert "city" in json.loads(response.output_text)


def test_an_identical_response_request_hits_the_exact_cache(gateway: RunningGateway, gpt: openai.OpenAI) -> None:
    ask = {"model": "gpt-4o-mini", "input": "What is the capital of France?", "temperature": 0}
    first = gpt.responses.with_raw_response.create(**ask)  # type: ignore[call-overload]
    second = gpt.responses.with_raw_response.create(**ask)  # type: ignore[call-overload]
    assert first.headers["x-thrifty-cache"] == "miss" and second.headers["x-thrifty-cache"] == "hit"
    assert second.parse().output_text == first.parse().output_text
    miss, hit = gateway.records(2)
    assert hit.cost is not None and hit.cost.total == 0 and miss.cost is not None
    assert hit.savings == {"exact_cache": miss.cost.total}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].type"),
        ({"input": 7}, "input"),
    ],
)
def test_what_has_no_chat_equivalent_is_a_400_naming_the_field(
    gpt: openai.OpenAI, extra: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {"model": "gpt-4o-mini", "input": "hi", **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        gpt.responses.create(**arguments)
    assert field in str(refused.value)


def test_the_chat_request_carries_what_the_responses_request_said() -> None:
    chat = responses_to_chat(
        {
            "model": "gpt-4o",
            "instructions": "Be terse.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            "max_output_tokens": 50,
            "temperature": 0.2,
            "stream": True,
            "reasoning": {"effort": "low"},
            "store": True,
        }
    )
    assert chat == {
        "model": "gpt-4o",
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
        "max_completion_tokens": 50,
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with pytest.raises(RequestError, match="frobnicate"):
        responses_to_chat({"model": "gpt-4o", "input": "hi", "frobnicate": 1})


@pytest.fixture
def inprocess(tmp_path: Path) -> Iterator[thrifty.Thrifty]:
    instance = thrifty.Thrifty(ledger=f"sqlite:///{tmp_path / 'ledger.db'}", journal_dir=tmp_path / "journal")
    yield instance
    instance.close()


def test_responses_in_process_are_priced_and_recorded(
    inprocess: thrifty.Thrifty, simulator_url: str, tmp_path: Path
) -> None:
    client = inprocess.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), feature="agent")
    whole = client.responses.create(model="gpt-4o-mini", input="Say hello in-process.", max_output_tokens=2000)
    with client.responses.stream(model="gpt-4o-mini", input="And streamed.", max_output_tokens=2000) as stream:
        final = stream.get_final_response()
    assert whole.output_text and final.output_text
    inprocess.runtime.writer.flush(timeout=10)
    store = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        first, second = sorted(store.records(limit=10), key=lambda r: r.id)
    finally:
        store.close()
    assert first.usage == _usage(whole) and second.usage == _usage(final) and second.stream
    assert first.feature == "agent" and first.details["endpoint"] == "responses"
    assert first.cost is not None and first.cost.total > 0


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_a_streamed_function_call_arrives_whole(gpt: openai.OpenAI, model: str) -> None:
    with gpt.responses.stream(
        model=model,
        input="What is the weather in Lisbon? Use get_weather.",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds


def test_a_client_leaving_a_responses_stream_stops_the_upstream_and_is_priced(gateway: RunningGateway) -> None:
    httpx2.post(f"{gateway.simulator_url}/_simulator/faults", json={"model": "gpt-4o", "fault": "chunk-delay=30"})
    body = {"model": "gpt-4o", "input": "Tell me a long story.", "max_output_tokens": 300, "stream": True}
    try:
        with httpx2.stream("POST", f"{gateway.url}/v1/responses", json=body, timeout=10) as response:
            assert response.status_code == 200
            deltas = 0
            for line in response.iter_lines():
                if line.startswith("event: response.output_text.delta"):
                    deltas += 1
                if deltas == 5:
                    break  # leave mid-stream
        (record,) = gateway.records(1)
    finally:
        httpx2.delete(f"{gateway.simulator_url}/_simulator/faults")
    assert record.status == "client_disconnected" and record.details["endpoint"] == "responses"
    assert 1 <= record.usage.output_tokens < 300  # the rest was never generated nor billed
    assert record.cost is not None and record.cost.total > 0
