"""The simulator's Anthropic face, driven by the official ``anthropic`` SDK over real HTTP."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import anthropic
import pytest

from thrifty.core.tokens.counter import TokenCounter
from thrifty.simulator import BackgroundSimulator, SimulatorConfig
from thrifty.wire.anthropic_messages import parse_anthropic_request

MODEL = "claude-sonnet-4-6"  # caches prefixes of 2048 tokens or more
SMALL_MIN_MODEL = "claude-opus-4-1"  # any other Claude model: 1024
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1},
        },
        "required": ["city", "unit", "days"],
    },
}


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture(scope="module")
def server(counter: TokenCounter) -> Iterator[BackgroundSimulator]:
    with BackgroundSimulator(counter=counter) as running:
        yield running


@pytest.fixture
def client(server: BackgroundSimulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def total_tokens(counter: TokenCounter, body: dict[str, Any]) -> int:
    return counter.count_request(parse_anthropic_request({"max_tokens": 1, **body})).input_tokens


def document(words: int, tag: str) -> str:
    """About ``words`` tokens of text that differs from any other tag's."""
    return " ".join(f"{tag}{i % 97} item" for i in range(words // 3))


def test_message_usage_is_exact(client: anthropic.Anthropic, counter: TokenCounter) -> None:
    body = {"system": "Be brief.", "messages": user("Tell me about prompt caching.")}
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=1000, **body)
    message = raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_01")
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert len(message.content) == 1
    block = message.content[0]
    assert block.type == "text"
    assert message.usage.output_tokens == len(counter.encoding_for(MODEL).encode(block.text))
    assert message.usage.input_tokens == total_tokens(counter, {"model": MODEL, **body})
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_")
    assert int(raw.headers["anthropic-ratelimit-requests-remaining"]) >= 0
    assert raw.headers["anthropic-ratelimit-tokens-reset"].endswith("Z")
    assert "anthropic-ratelimit-input-tokens-limit" in raw.headers
    # The system prompt as blocks counts the same as the same text as a string.
    blocks = client.messages.create(
        model=MODEL,
        max_tokens=1000,
        system=[{"type": "text", "text": "Be brief."}],
        messages=user("Tell me about prompt caching."),
    )
    assert blocks.usage.input_tokens == message.usage.input_tokens
    counted = client.messages.count_tokens(model=MODEL, **body)
    assert counted.input_tokens == message.usage.input_tokens


def test_stream_matches_the_whole_message(client: anthropic.Anthropic, server: BackgroundSimulator) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 1000, "messages": user("Stream this, please.")}
    whole = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.usage.output_tokens == whole.usage.output_tokens
    # The raw event sequence, as the Messages API sends it.
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "k"}
    conn.request("POST", "/v1/messages", body=json.dumps({**kwargs, "stream": True}), headers=headers)
    response = conn.getresponse()
    events = [e for e in response.read().decode().split("\n\n") if e]
    conn.close()
    names = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert len(names[3:-3]) == whole.usage.output_tokens  # one token a delta
    start = json.loads(events[0].split("\n")[1].removeprefix("data: "))
    assert start["message"]["usage"]["input_tokens"] == whole.usage.input_tokens
    assert start["message"]["usage"]["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": 0,
    }
    delta = json.loads(events[-2].split("\n")[1].removeprefix("data: "))
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == whole.usage.output_tokens


def test_max_tokens_and_stop_sequences(client: anthropic.Anthropic, counter: TokenCounter) -> None:
    messages = user("A long answer, please.")
    full = client.messages.create(model=MODEL, max_tokens=1000, messages=messages)
    full_text = full.content[0].text
    cut = client.messages.create(model=MODEL, max_tokens=9, messages=messages)
    assert cut.stop_reason == "max_tokens"
    assert cut.usage.output_tokens == 9
    assert full_text.startswith(cut.content[0].text)
    with client.messages.stream(model=MODEL, max_tokens=9, messages=messages) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "max_tokens"
    assert streamed.usage.output_tokens == 9
    stop = " " + full_text.split(" ")[12]
    stopped = client.messages.create(model=MODEL, max_tokens=1000, messages=messages, stop_sequences=[stop])
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == stop
    text = stopped.content[0].text
    assert text == full_text[: full_text.index(stop)]
    assert stopped.usage.output_tokens == len(counter.encoding_for(MODEL).encode(text))


def _check_weather(value: object) -> None:
    assert isinstance(value, dict)
    assert isinstance(value["city"], str)
    assert value["unit"] in ("celsius", "fahrenheit")
    assert isinstance(value["days"], int)
    assert value["days"] >= 1


def test_tool_use(client: anthropic.Anthropic, counter: TokenCounter) -> None:
    forced = client.messages.create(
        model=MODEL,
        max_tokens=500,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=user("Oslo?"),
    )
    assert forced.stop_reason == "tool_use"
    assert [b.type for b in forced.content] == ["tool_use"]
    call = forced.content[0]
    assert call.type == "tool_use"
    assert call.id.startswith("toolu_01")
    assert call.name == "get_weather"
    _check_weather(call.input)
    encoding = counter.encoding_for(MODEL)
    arguments = json.dumps(call.input, separators=(",", ":"))
    assert forced.usage.output_tokens == len(encoding.encode("get_weather")) + len(encoding.encode(arguments))
    mentioned = client.messages.create(
        model=MODEL,
        max_tokens=500,
        tools=[WEATHER],
        messages=user("Use get_weather for Oslo."),
    )
    assert [b.type for b in mentioned.content] == ["text", "tool_use"]
    assert mentioned.stop_reason == "tool_use"
    with client.messages.stream(
        model=MODEL,
        max_tokens=500,
        tools=[WEATHER],
        messages=user("Use get_weather for Oslo."),
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == mentioned.content[1].input
    _check_weather(final.content[1].input)
    assert final.usage.output_tokens == mentioned.usage.output_tokens
    # A tool result is answered with text, not another call.
    answered = client.messages.create(
        model=MODEL,
        max_tokens=500,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Use get_weather for Oslo."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ],
    )
    assert answered.stop_reason == "end_turn"
    assert [b.type for b in answered.content] == ["text"]


def test_adaptive_thinking_is_billed_as_output(client: anthropic.Anthropic, counter: TokenCounter) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=2000,
        thinking={"type": "adaptive"},
        messages=user("Think first."),
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking, text = message.content
    assert thinking.signature
    encoding = counter.encoding_for(MODEL)
    expected = len(encoding.encode(thinking.thinking)) + len(encoding.encode(text.text))
    assert message.usage.output_tokens == expected
    with client.messages.stream(
        model=MODEL,
        max_tokens=2000,
        thinking={"type": "adaptive"},
        messages=user("Think first."),
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].thinking == thinking.thinking
    assert final.content[0].signature == thinking.signature
    assert final.usage.output_tokens == message.usage.output_tokens


def _usage_sum(usage: anthropic.types.Usage) -> int:
    return usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)


def test_cache_write_then_read(client: anthropic.Anthropic, counter: TokenCounter) -> None:
    system = [
        {"type": "text", "text": "You answer questions about the attached manual."},
        {"type": "text", "text": document(3000, "manual"), "cache_control": {"type": "ephemeral"}},
    ]
    body: dict[str, Any] = {"model": MODEL, "system": system, "messages": user("What does section 4 say?")}
    total = total_tokens(counter, body)
    first = client.messages.create(max_tokens=20, **body)
    written = first.usage.cache_creation_input_tokens or 0
    assert written >= 2048
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == written
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert 0 < first.usage.input_tokens < 40  # only the user's question comes after the breakpoint
    assert _usage_sum(first.usage) == total
    second = client.messages.create(max_tokens=20, **body)
    assert second.usage.cache_read_input_tokens == written
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens
    assert _usage_sum(second.usage) == total
    # Another question after the same cached prefix reads it too.
    other = client.messages.create(max_tokens=20, **{**body, "messages": user("And section 9, in full detail?")})
    assert other.usage.cache_read_input_tokens == written
    # Streaming reports the cache in message_start, and the SDK's final message carries it.
    with client.messages.stream(max_tokens=20, **body) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == written
    assert final.usage.input_tokens == first.usage.input_tokens


def test_cache_ttl_split_and_lookback(client: anthropic.Anthropic, counter: TokenCounter) -> None:
    tools = [{**WEATHER, "description": document(1500, "tooldoc"), "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    system = [{"type": "text", "text": document(1500, "policy"), "cache_control": {"type": "ephemeral"}}]
    body: dict[str, Any] = {"model": SMALL_MIN_MODEL, "tools": tools, "system": system, "messages": user("Hello")}
    total = total_tokens(counter, body)
    first = client.messages.create(max_tokens=20, **body)
    created = first.usage.cache_creation
    assert created is not None
    assert created.ephemeral_1h_input_tokens >= 1024  # the tools, up to their 1h breakpoint
    assert created.ephemeral_5m_input_tokens > 0  # the system prompt, up to its 5m breakpoint
    assert (
        first.usage.cache_creation_input_tokens == created.ephemeral_1h_input_tokens + created.ephemeral_5m_input_tokens
    )
    assert first.usage.cache_read_input_tokens == 0
    assert _usage_sum(first.usage) == total
    again = client.messages.create(max_tokens=20, **body)
    assert again.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert again.usage.cache_creation_input_tokens == 0
    # A changed system prompt still reads the tools' 1h prefix and writes a new 5m one.
    changed = {**body, "system": [{**system[0], "text": document(1500, "revised")}]}
    third = client.messages.create(max_tokens=20, **changed)
    assert third.usage.cache_read_input_tokens == created.ephemeral_1h_input_tokens
    assert third.usage.cache_creation is not None
    assert third.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert third.usage.cache_creation.ephemeral_5m_input_tokens > 0
    assert _usage_sum(third.usage) == total_tokens(counter, changed)
    # A conversation that grows: the new breakpoint finds the earlier one by looking back.
    turn = [{"type": "text", "text": document(1500, "turn"), "cache_control": {"type": "ephemeral"}}]
    one = {"model": SMALL_MIN_MODEL, "messages": [{"role": "user", "content": turn}]}
    first_turn = client.messages.create(max_tokens=20, **one)
    prefix = first_turn.usage.cache_creation_input_tokens or 0
    assert prefix > 0
    grown = [
        {"role": "user", "content": [{"type": "text", "text": turn[0]["text"]}]},
        {"role": "assistant", "content": "noted"},
        {"role": "user", "content": [{"type": "text", "text": "next", "cache_control": {"type": "ephemeral"}}]},
    ]
    second_turn = client.messages.create(max_tokens=20, model=SMALL_MIN_MODEL, messages=grown)
    assert second_turn.usage.cache_read_input_tokens == prefix
    assert (second_turn.usage.cache_creation_input_tokens or 0) > 0
    assert second_turn.usage.input_tokens == 0


def test_cache_minimum_and_limits(client: anthropic.Anthropic) -> None:
    small = [{"type": "text", "text": document(1500, "small"), "cache_control": {"type": "ephemeral"}}]
    for model in ("claude-sonnet-4-6", "claude-haiku-4-5"):  # minimums 2048 and 4096: too short for both
        for _ in range(2):
            message = client.messages.create(model=model, max_tokens=5, system=small, messages=user("hi"))
            assert message.usage.cache_creation_input_tokens == 0
            assert message.usage.cache_read_input_tokens == 0
    written = client.messages.create(model=SMALL_MIN_MODEL, max_tokens=5, system=small, messages=user("hi"))
    assert (written.usage.cache_creation_input_tokens or 0) >= 1024
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
        client.messages.create(model=MODEL, max_tokens=5, system=blocks, messages=user("hi"))
    wrong_order = [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    with pytest.raises(anthropic.BadRequestError, match="1h"):
        client.messages.create(model=MODEL, max_tokens=5, system=wrong_order, messages=user("hi"))


def test_automatic_caching_and_expiry(counter: TokenCounter) -> None:
    config = SimulatorConfig(anthropic_cache_ttl_5m_s=0.25)
    with BackgroundSimulator(config, counter=counter) as quick:
        client = anthropic.Anthropic(base_url=quick.anthropic_base_url, api_key="k", max_retries=0)
        body: dict[str, Any] = {
            "model": SMALL_MIN_MODEL,
            "max_tokens": 5,
            "system": document(1500, "auto"),
            "messages": user("hi"),
            "cache_control": {"type": "ephemeral"},  # top level: a breakpoint on the last block
        }
        first = client.messages.create(**body)
        assert (first.usage.cache_creation_input_tokens or 0) > 1024
        assert first.usage.input_tokens == 0
        assert client.messages.create(**body).usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
        time.sleep(0.15)
        client.messages.create(**body)  # a read refreshes the entry
        time.sleep(0.15)
        refreshed = client.messages.create(**body)
        assert refreshed.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
        time.sleep(0.3)
        expired = client.messages.create(**body)
        assert expired.usage.cache_read_input_tokens == 0
        assert expired.usage.cache_creation_input_tokens == first.usage.cache_creation_input_tokens


def test_every_shape_validates_against_the_sdk_types(server: BackgroundSimulator) -> None:
    """Stricter than the SDK's own parsing (which does not validate): every field has its type."""
    from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
    from pydantic import TypeAdapter

    events_type: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
    parts = urlsplit(server.url)
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    bodies: list[dict[str, Any]] = [
        {"model": MODEL, "max_tokens": 100, "messages": user("plain"), "stop_sequences": [" the"]},
        {"model": MODEL, "max_tokens": 300, "messages": user("get_weather now"), "tools": [WEATHER]},
        {
            "model": MODEL,
            "max_tokens": 3000,
            "messages": user("x"),
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        {
            "model": SMALL_MIN_MODEL,
            "max_tokens": 5,
            "system": [{"type": "text", "text": document(1500, "shape"), "cache_control": {"type": "ephemeral"}}],
            "messages": user("x"),
        },
    ]
    for body in bodies:
        for stream in (False, True):
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
            conn.request("POST", "/v1/messages", body=json.dumps({**body, "stream": stream}), headers=headers)
            raw = conn.getresponse().read()
            conn.close()
            if not stream:
                Message.model_validate_json(raw)
                continue
            for event in (e for e in raw.decode().split("\n\n") if e):
                name, data = event.split("\n")
                if name != "event: ping":
                    events_type.validate_json(data.removeprefix("data: "))
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    conn.request(
        "POST", "/v1/messages/count_tokens", body=json.dumps({"model": MODEL, "messages": user("x")}), headers=headers
    )
    MessageTokensCount.model_validate_json(conn.getresponse().read())
    conn.close()
