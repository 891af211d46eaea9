"""OpenAI and Anthropic request shapes, parsed into one type and rendered back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from thrifty.core.ledger import LEDGER_COLUMNS, LedgerRecord
from thrifty.core.messages import RequestError, TextPart, ToolResultPart
from thrifty.wire.anthropic_messages import parse_anthropic_request, render_anthropic_request
from thrifty.wire.openai_chat import parse_openai_request, render_openai_request

OPENAI_BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    "max_tokens": 100,
    "temperature": 0.2,
    "stream": True,
    "response_format": {"type": "json_object"},
    "n": 2,
}

ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 256,
    "system": [{"type": "text", "text": "Long fixed context", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, sunny"}],
        },
    ],
    "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
    "metadata": {"user_id": "u1"},
}


def test_openai_request_round_trips_with_unknown_fields_passed_through() -> None:
    request = parse_openai_request(OPENAI_BODY)
    assert request.wire_format == "openai"
    assert request.max_tokens == 100
    assert request.stream
    assert request.extra == {"response_format": {"type": "json_object"}, "n": 2}
    assert request.messages[2].tool_calls[0].arguments == '{"city":"Paris"}'
    assert render_openai_request(request) == OPENAI_BODY


def test_anthropic_request_round_trips() -> None:
    request = parse_anthropic_request(ANTHROPIC_BODY)
    assert request.messages[0].role == "system"
    system_part = request.messages[0].parts[0]
    assert isinstance(system_part, TextPart)
    assert system_part.cache_control == {"type": "ephemeral"}
    assert request.extra == {"metadata": {"user_id": "u1"}}
    assert render_anthropic_request(request) == ANTHROPIC_BODY


def test_anthropic_tool_results_become_openai_tool_messages() -> None:
    rendered = render_openai_request(parse_anthropic_request(ANTHROPIC_BODY))
    roles = [m["role"] for m in rendered["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert rendered["messages"][2]["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": json.dumps({"city": "Paris"}, separators=(",", ":")),
    }
    assert rendered["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C, sunny"}


def test_openai_tool_messages_become_anthropic_tool_results() -> None:
    body = render_anthropic_request(parse_openai_request(OPENAI_BODY))
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    last = body["messages"][-1]
    assert last["role"] == "user"
    assert last["content"] == [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"}]
    reparsed = parse_anthropic_request(body)
    result = reparsed.messages[-1].parts[0]
    assert isinstance(result, ToolResultPart)
    assert result.text == "18C, sunny"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ([], "body"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "", "messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "gpt-4o"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "gpt-4o", "messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "messages[0].content[0].type",
        ),
        ({"model": "gpt-4o", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}, "max_tokens"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "x"}]},
            "tools[0].type",
        ),
    ],
)
def test_invalid_openai_requests_name_the_place(body: object, path: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_openai_request(body)
    assert raised.value.path == path


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"system": [{"type": "image"}]}, "system[0].type"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": 3}]}]},
            "messages[0].content[0].input",
        ),
        ({"tools": [{"name": "x"}]}, "tools[0].input_schema"),
    ],
)
def test_invalid_anthropic_requests_name_the_place(change: dict[str, Any], path: str) -> None:
    body = {**ANTHROPIC_BODY, **change}
    with pytest.raises(RequestError) as raised:
        parse_anthropic_request(body)
    assert raised.value.path == path


def test_ledger_rows_have_exactly_the_table_columns() -> None:
    row = LedgerRecord(requested_model="gpt-4o", ts=datetime(2026, 1, 1, tzinfo=UTC)).to_row()
    assert tuple(row) == LEDGER_COLUMNS
    assert LedgerRecord.from_row(row).to_row() == row


def test_ledger_records_refuse_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        LedgerRecord(requested_model="gpt-4o", ts=datetime(2026, 1, 1))
