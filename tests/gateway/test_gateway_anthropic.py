"""The Anthropic face and the two cross-format paths, through the official SDKs."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import openai

from tests.support.gateway import RunningGateway, expected_cost
from thrifty.core.usage import Usage

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]


def test_messages_are_priced_from_anthropic_usage(gateway: RunningGateway, claude: anthropic.Anthropic) -> None:
    raw = claude.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=50, messages=HELLO)  # type: ignore[arg-type]
    message = raw.parse()
    usage = Usage.from_anthropic(message.usage.model_dump())
    (record,) = gateway.records(1)
    assert record.usage == usage
    assert record.cost is not None
    assert (
        Decimal(raw.headers["x-thrifty-cost-usd"])
        == record.cost.total
        == expected_cost(usage, "claude-sonnet-4-5", record)
    )


def test_streamed_messages_are_priced_from_message_start_and_delta(
    gateway: RunningGateway, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=HELLO) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    usage = Usage.from_anthropic(final.usage.model_dump())
    assert usage.output_tokens > 0
    (record,) = gateway.records(1)
    assert record.stream and record.usage == usage
    assert record.cost is not None and record.cost.total == expected_cost(usage, "claude-haiku-4-5", record)


def test_cache_control_writes_then_reads_each_at_its_own_rate(
    gateway: RunningGateway, claude: anthropic.Anthropic
) -> None:
    system = [{"type": "text", "text": "house rules " * 600, "cache_control": {"type": "ephemeral"}}]
    first = claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, system=system, messages=HELLO)  # type: ignore[arg-type]
    second = claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, system=system, messages=HELLO)  # type: ignore[arg-type]
    written = first.usage.cache_creation_input_tokens or 0
    read = second.usage.cache_read_input_tokens or 0
    assert written >= 1024 and read == written
    one, two = gateway.records(2)
    assert one.usage.cache_write_5m_tokens == written
    assert two.usage.cache_read_tokens == read
    assert one.cost is not None and two.cost is not None
    assert one.cost.cache_write == Decimal(written) * Decimal("3.75") / 1_000_000
    assert two.cost.cache_read == Decimal(read) * Decimal("0.3") / 1_000_000
    assert two.cost.total < one.cost.total


def test_an_openai_client_can_call_a_claude_model(gateway: RunningGateway, gpt: openai.OpenAI) -> None:
    completion = gpt.chat.completions.create(model="claude-sonnet-4-5", messages=HELLO, max_tokens=30)  # type: ignore[arg-type]
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    (record,) = gateway.records(1)
    assert record.usage.output_tokens == completion.usage.completion_tokens  # type: ignore[union-attr]
    assert record.usage.input_tokens == completion.usage.prompt_tokens  # type: ignore[union-attr]
    assert record.cost is not None
    assert record.cost.total == expected_cost(record.usage, "claude-sonnet-4-5", record)


def test_an_openai_client_streams_a_claude_model_with_usage(gateway: RunningGateway, gpt: openai.OpenAI) -> None:
    chunks = list(
        gpt.chat.completions.create(
            model="claude-haiku-4-5",
            messages=HELLO,  # type: ignore[arg-type]
            max_tokens=30,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    (record,) = gateway.records(1)
    assert record.usage.output_tokens == chunks[-1].usage.completion_tokens
    assert record.cost is not None and record.cost.total == expected_cost(record.usage, "claude-haiku-4-5", record)


def test_an_anthropic_client_can_call_a_gpt_model(gateway: RunningGateway, claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="gpt-4o-mini", max_tokens=30, messages=HELLO)  # type: ignore[arg-type]
    assert message.content[0].type == "text"
    with claude.messages.stream(model="gpt-4o-mini", max_tokens=30, messages=HELLO) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.usage.output_tokens == message.usage.output_tokens  # deterministic upstream
    first, second = gateway.records(2)
    assert first.usage.output_tokens == message.usage.output_tokens
    assert second.stream and second.usage == first.usage
    assert first.cost is not None and first.cost.total == expected_cost(first.usage, "gpt-4o-mini", first)


def test_tool_use_across_formats(gateway: RunningGateway, claude: anthropic.Anthropic) -> None:
    tools = [
        {
            "name": "lookup",
            "description": "Look a word up",
            "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
        }
    ]
    message = claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "lookup the word cat"}],
    )
    blocks = [b for b in message.content if b.type == "tool_use"]
    assert blocks and blocks[0].name == "lookup" and "word" in blocks[0].input  # type: ignore[union-attr,operator]
    assert message.stop_reason == "tool_use"
