"""Request bodies translated between OpenAI Chat Completions and Anthropic Messages.

Every translated body is checked against the installed SDK's own request types (pydantic
validation of the SDK TypedDicts, unknown keys forbidden), so "valid" means what the SDKs mean.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from anthropic.types import message_create_params as anthropic_params
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import completion_create_params as openai_params
from pydantic import TypeAdapter

from thrifty.core.messages import RequestError
from thrifty.wire.translate import RequestTranslation, anthropic_to_openai_request, openai_to_anthropic_request

_ANTHROPIC_ADAPTERS: dict[bool, TypeAdapter[Any]] = {
    False: TypeAdapter(anthropic_params.MessageCreateParamsNonStreaming),
    True: TypeAdapter(anthropic_params.MessageCreateParamsStreaming),
}
_OPENAI_ADAPTERS: dict[bool, TypeAdapter[Any]] = {
    False: TypeAdapter(openai_params.CompletionCreateParamsNonStreaming),
    True: TypeAdapter(openai_params.CompletionCreateParamsStreaming),
}


def _materialise(value: Any) -> Any:
    """Pydantic validates ``Iterable`` fields lazily; walking them forces the validation."""
    if isinstance(value, dict):
        return {k: _materialise(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ValidatorIterator":
        return [_materialise(v) for v in value]
    return value


def assert_valid_anthropic(body: dict[str, Any]) -> None:
    # anthropic 2.10.0 no longer types the sampling parameters (the API still takes them, and the
    # SDK sends them through extra_body), so they are checked here by hand.
    sampling = {k: body[k] for k in ("temperature", "top_p") if k in body}
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in sampling.values())
    rest = {k: v for k, v in body.items() if k not in sampling}
    validated = _materialise(_ANTHROPIC_ADAPTERS[bool(body.get("stream"))].validate_python(rest, extra="forbid"))
    assert validated == rest


def assert_valid_openai(body: dict[str, Any]) -> None:
    validated = _materialise(_OPENAI_ADAPTERS[bool(body.get("stream"))].validate_python(body, extra="forbid"))
    assert validated == body


PNG = "iVBORw0KGgo="

OPENAI_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris and Lyon? Here are maps."},
                {"type": "image_url", "image_url": {"url": "https://example.com/paris.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Lyon"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12C, rain"}]},
        {"role": "user", "content": "And tomorrow?"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "strict": True,
            },
        }
    ],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "max_completion_tokens": 300,
    "temperature": 1.0,
    "top_p": 0.9,
    "stop": "END",
    "stream": True,
    "stream_options": {"include_usage": True},
    "user": "user-42",
    "seed": 7,
    "frequency_penalty": 0.5,
}

ANTHROPIC_EXPECTED: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris and Lyon? Here are maps."},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/paris.png"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Lyon"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "12C, rain"}]},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ],
    "max_tokens": 300,
    "temperature": 1.0,
    "top_p": 0.9,
    "stop_sequences": ["END"],
    "stream": True,
    "metadata": {"user_id": "user-42"},
    "tools": [
        {
            "name": "weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "strict": True,
        }
    ],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
}


def test_openai_request_becomes_the_equivalent_anthropic_request() -> None:
    body = copy.deepcopy(OPENAI_BODY)
    result = openai_to_anthropic_request(body, default_max_tokens=4096)
    assert isinstance(result, RequestTranslation)
    assert result.body == ANTHROPIC_EXPECTED
    assert_valid_anthropic(result.body)
    assert body == OPENAI_BODY  # the input is not modified
    assert result.dropped == ("seed", "frequency_penalty")


@pytest.mark.parametrize(("field", "value"), [("temperature", 1.4), ("temperature", 2.0), ("top_p", 1.5)])
def test_a_sampling_value_beyond_anthropics_range_is_rejected_naming_the_range(field: str, value: float) -> None:
    """OpenAI takes temperatures up to 2, Anthropic up to 1: a value Claude would refuse is refused
    here, naming Anthropic's range, rather than clamped into another request."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(RequestError) as raised:
        openai_to_anthropic_request(body, default_max_tokens=512)
    assert raised.value.path == field
    assert "must be between 0 and 1 (Anthropic's range" in raised.value.problem
    assert f"got {value:g}" in raised.value.problem
    edge = openai_to_anthropic_request({**body, field: 1}, default_max_tokens=512).body
    assert edge[field] == 1


def test_a_request_within_both_apis_ranges_is_translated_without_notes() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.7}
    result = openai_to_anthropic_request(body, default_max_tokens=512)
    assert result.body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 512,
        "temperature": 0.7,
    }
    assert result.dropped == ()
    assert result.notes == ()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 100),
        ({"max_tokens": 50}, 50),
        ({"max_completion_tokens": 70, "max_tokens": 50}, 70),
    ],
)
def test_max_tokens_defaults_when_absent(fields: dict[str, Any], expected: int) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    assert openai_to_anthropic_request(body, default_max_tokens=100).body["max_tokens"] == expected


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ["END"]), (["a", "b"], ["a", "b"]), ([], None), (None, None), ("", None)],
)
def test_stop_becomes_stop_sequences(stop: Any, expected: list[str] | None) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": stop}
    assert openai_to_anthropic_request(body, default_max_tokens=10).body.get("stop_sequences") == expected


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "f"}},
            False,
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        ),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_and_parallel_tool_calls(choice: Any, parallel: bool | None, expected: Any) -> None:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [TOOL]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    result = openai_to_anthropic_request(body, default_max_tokens=10).body
    assert result.get("tool_choice") == expected
    assert_valid_anthropic(result)


def test_a_tool_without_parameters_gets_an_empty_object_schema() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "now"}}],
    }
    tools = openai_to_anthropic_request(body, default_max_tokens=10).body["tools"]
    assert tools == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


def test_json_schema_response_format_becomes_structured_output() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": True}},
    }
    result = openai_to_anthropic_request(body, default_max_tokens=10).body
    assert result["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert_valid_anthropic(result)
    back = anthropic_to_openai_request(result).body
    assert back["response_format"]["json_schema"]["schema"] == schema
    assert_valid_openai(back)


def test_fields_with_no_anthropic_equivalent_are_dropped_and_named() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "name": "alice", "content": "hi"}],
        "presence_penalty": 0.1,
        "logit_bias": {"50256": -100},
        "reasoning_effort": "low",
        "metadata": {"k": "v"},
        "store": True,
        "service_tier": None,  # null fields mean nothing and are not reported
        "n": 1,
        "logprobs": False,
        "modalities": ["text"],
        "response_format": {"type": "text"},
    }
    result = openai_to_anthropic_request(body, default_max_tokens=10)
    assert set(result.dropped) == {
        "messages[0].name",
        "presence_penalty",
        "logit_bias",
        "reasoning_effort",
        "metadata",
        "store",
    }
    assert result.body == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


def _with(change: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **change}


def _user_part(part: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": [part]}]}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (_with({"n": 2}), "n"),
        (_with({"logprobs": True}), "logprobs"),
        (_with({"top_logprobs": 3}), "top_logprobs"),
        (_with({"modalities": ["text", "audio"]}), "modalities"),
        (_with({"audio": {"voice": "alloy", "format": "mp3"}}), "audio"),
        (_with({"response_format": {"type": "json_object"}}), "response_format.type"),
        (
            _with({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            "response_format.json_schema.schema",
        ),
        (_with({"functions": [{"name": "f"}]}), "functions"),
        (_with({"function_call": "auto"}), "function_call"),
        (_with({"web_search_options": {}}), "web_search_options"),
        (_with({"temperature": 2.5}), "temperature"),
        (_with({"tools": [{"type": "custom", "custom": {"name": "x"}}]}), "tools[0].type"),
        (_with({"tools": [TOOL], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}), "tool_choice.type"),
        (_with({"tools": [TOOL], "tool_choice": "sometimes"}), "tool_choice"),
        (_with({"model": ""}), "model"),
        (_with({"messages": []}), "messages"),
        (_with({"messages": [{"role": "system", "content": "only a system prompt"}]}), "messages"),
        (_with({"messages": [{"role": "wizard", "content": "hi"}]}), "messages[0].role"),
        (_with({"messages": [{"role": "function", "name": "f", "content": "x"}]}), "messages[0].role"),
        (_with({"messages": [{"role": "tool", "content": "x"}]}), "messages[0].tool_call_id"),
        (_with({"messages": [{"role": "user"}]}), "messages[0].content"),
        (_with({"messages": [{"role": "system", "content": [{"type": "image_url"}]}]}), "messages[0].content[0].type"),
        (
            _user_part({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}),
            "messages[0].content[0].type",
        ),
        (_user_part({"type": "file", "file": {"file_id": "file-1"}}), "messages[0].content[0].file"),
        (
            _user_part({"type": "file", "file": {"file_data": "data:text/csv;base64,AA"}}),
            "messages[0].content[0].file.file_data",
        ),
        (
            _user_part({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}),
            "messages[0].content[0].image_url.url",
        ),
        (
            _user_part({"type": "image_url", "image_url": {"url": "data:image/png,raw"}}),
            "messages[0].content[0].image_url.url",
        ),
        (
            _user_part({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}),
            "messages[0].content[0].image_url.url",
        ),
        (_user_part({"type": "video"}), "messages[0].content[0].type"),
        (
            _with(
                {"messages": [{"role": "assistant", "content": "x", "function_call": {"name": "f", "arguments": "{}"}}]}
            ),
            "messages[0].function_call",
        ),
        (
            _with(
                {
                    "messages": [
                        {
                            "role": "assistant",
                            "tool_calls": [{"id": "c", "type": "function", "function": {"arguments": "{}"}}],
                        }
                    ]
                }
            ),
            "messages[0].tool_calls[0].function.name",
        ),
    ],
)
def test_requests_anthropic_cannot_express_are_rejected_with_the_path(body: dict[str, Any], path: str) -> None:
    with pytest.raises(RequestError) as raised:
        openai_to_anthropic_request(body, default_max_tokens=10)
    assert raised.value.path == path
    assert raised.value.problem


def test_a_pdf_file_part_becomes_a_document_block() -> None:
    body = _user_part(
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
    )
    result = openai_to_anthropic_request(body, default_max_tokens=10).body
    assert result["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        }
    ]
    assert_valid_anthropic(result)


def test_system_messages_mid_conversation_are_hoisted_with_a_note() -> None:
    body = _with(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "Now be terse."},
                {"role": "user", "content": "go"},
            ]
        }
    )
    result = openai_to_anthropic_request(body, default_max_tokens=10)
    assert result.body["system"] == [{"type": "text", "text": "Now be terse."}]
    # The two user turns either side of the system message are one Anthropic turn.
    assert result.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "go"}]}
    ]
    assert any("moved into the system prompt" in note for note in result.notes)
    assert_valid_anthropic(result.body)


def test_empty_messages_are_left_out_and_a_prefill_loses_trailing_whitespace() -> None:
    body = _with(
        {
            "messages": [
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": [{"type": "text", "text": ""}]},
                {"role": "assistant", "content": "The colour is "},
            ]
        }
    )
    result = openai_to_anthropic_request(body, default_max_tokens=10)
    assert result.body["messages"] == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "The colour is"},
    ]
    assert len(result.notes) == 2
    assert_valid_anthropic(result.body)


def test_tool_arguments_that_are_not_a_json_object_are_kept_whole() -> None:
    calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{broken"}},
        {"id": "b", "type": "function", "function": {"name": "f", "arguments": "[1,2]"}},
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}},
    ]
    body = _with({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": calls}]})
    blocks = openai_to_anthropic_request(body, default_max_tokens=10).body["messages"][1]["content"]
    assert [b["input"] for b in blocks] == [{"_raw": "{broken"}, {"_raw": "[1,2]"}, {}]


def test_tool_ids_anthropic_would_reject_are_rewritten_on_both_sides() -> None:
    body = _with(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "functions.f:0", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "functions.f:0", "content": "ok"},
            ]
        }
    )
    messages = openai_to_anthropic_request(body, default_max_tokens=10).body["messages"]
    assert messages[1]["content"][0]["id"] == "functions_f_0"
    assert messages[2]["content"][0]["tool_use_id"] == "functions_f_0"


ANTHROPIC_BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "max_tokens": 256,
    "system": [{"type": "text", "text": "Long fixed context", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/b.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Let me look.", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "zoom", "input": {"level": 2}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [
                        {"type": "text", "text": "zoomed"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AA=="}},
                    ],
                    "is_error": True,
                },
                {"type": "text", "text": "Well?", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ],
    "tools": [
        {
            "name": "zoom",
            "description": "Zoom in",
            "input_schema": {"type": "object", "properties": {"level": {"type": "integer"}}},
            "cache_control": {"type": "ephemeral"},
            "input_examples": [{"level": 1}],
        }
    ],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "stop_sequences": ["###"],
    "temperature": 0.3,
    "top_k": 40,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "metadata": {"user_id": "u1"},
    "stream": True,
    "service_tier": "auto",
}

OPENAI_EXPECTED: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Long fixed context"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "zoom", "arguments": '{"level":2}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "zoomed"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AA=="}},
                {"type": "text", "text": "Well?"},
            ],
        },
    ],
    "max_completion_tokens": 256,
    "temperature": 0.3,
    "stop": ["###"],
    "stream": True,
    "stream_options": {"include_usage": True},
    "user": "u1",
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "zoom",
                "description": "Zoom in",
                "parameters": {"type": "object", "properties": {"level": {"type": "integer"}}},
            },
        }
    ],
    "tool_choice": "required",
    "parallel_tool_calls": False,
}


def test_anthropic_request_becomes_the_equivalent_openai_request() -> None:
    result = anthropic_to_openai_request(ANTHROPIC_BODY)
    assert result.body == OPENAI_EXPECTED
    assert_valid_openai(result.body)
    assert set(result.dropped) == {
        "messages[1].content[0]",  # the thinking block
        "messages[2].content[0].is_error",
        "tools[0].input_examples",
        "top_k",
        "thinking",
        "service_tier",
    }
    assert any("cache_control" in note for note in result.notes)
    assert any("images in tool results" in note for note in result.notes)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, ("auto", None)),
        ({"type": "any"}, ("required", None)),
        ({"type": "none", "disable_parallel_tool_use": True}, ("none", None)),
        ({"type": "tool", "name": "f"}, ({"type": "function", "function": {"name": "f"}}, None)),
        ({"type": "auto", "disable_parallel_tool_use": True}, ("auto", False)),
    ],
)
def test_anthropic_tool_choice(choice: dict[str, Any], expected: tuple[Any, bool | None]) -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": choice,
    }
    result = anthropic_to_openai_request(body).body
    assert (result["tool_choice"], result.get("parallel_tool_calls")) == expected
    assert_valid_openai(result)


def test_documents_become_file_or_text_parts() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
                ],
            }
        ],
    }
    result = anthropic_to_openai_request(body).body
    assert result["messages"][0]["content"] == [
        {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
        {"type": "text", "text": "plain"},
    ]
    assert_valid_openai(result)


def _anthropic(change: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **change}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (_anthropic({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}), "tools[0].type"),
        (_anthropic({"tools": [{"name": "f"}]}), "tools[0].input_schema"),
        (_anthropic({"stop_sequences": ["a", "b", "c", "d", "e"]}), "stop_sequences"),
        (_anthropic({"messages": [{"role": "system", "content": "x"}]}), "messages[0].role"),
        (_anthropic({"messages": []}), "messages"),
        (_anthropic({"system": [{"type": "image"}]}), "system[0].type"),
        (
            _anthropic({"messages": [{"role": "user", "content": [{"type": "search_result"}]}]}),
            "messages[0].content[0].type",
        ),
        (
            _anthropic(
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
                    ]
                }
            ),
            "messages[0].content[0].source.type",
        ),
        (
            _anthropic(
                {
                    "messages": [
                        {
                            "role": "assistant",
                            "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}],
                        }
                    ]
                }
            ),
            "messages[0].content[0].type",
        ),
        (
            _anthropic(
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]}],
                        }
                    ]
                }
            ),
            "messages[0].content[0].content[0].type",
        ),
        (
            _anthropic(
                {
                    "messages": [
                        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": 3}]}
                    ]
                }
            ),
            "messages[0].content[0].input",
        ),
        (_anthropic({"output_config": {"format": {"type": "regex"}}}), "output_config.format.type"),
        (
            _anthropic({"tool_choice": {"type": "sometimes"}, "tools": [{"name": "f", "input_schema": {}}]}),
            "tool_choice.type",
        ),
    ],
)
def test_requests_openai_cannot_express_are_rejected_with_the_path(body: dict[str, Any], path: str) -> None:
    with pytest.raises(RequestError) as raised:
        anthropic_to_openai_request(body)
    assert raised.value.path == path


def test_output_effort_is_dropped_and_a_disabled_thinking_is_not_reported() -> None:
    result = anthropic_to_openai_request(
        _anthropic({"output_config": {"effort": "low"}, "thinking": {"type": "disabled"}})
    )
    assert result.dropped == ("output_config.effort",)


ROUND_TRIP_OPENAI: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "assistant", "content": "It is 18C."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Thanks, and this?"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        },
    ],
    "tools": [
        {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}
    ],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "max_completion_tokens": 100,
    "temperature": 0.5,
    "top_p": 0.8,
    "stop": ["x", "y"],
    "user": "u",
}


def test_openai_to_anthropic_to_openai_gives_back_the_same_request() -> None:
    there = openai_to_anthropic_request(ROUND_TRIP_OPENAI, default_max_tokens=10)
    assert_valid_anthropic(there.body)
    back = anthropic_to_openai_request(there.body)
    assert back.body == ROUND_TRIP_OPENAI
    assert (there.dropped, there.notes, back.dropped, back.notes) == ((), (), (), ())


def test_anthropic_to_openai_to_anthropic_gives_back_the_same_request() -> None:
    original = {
        "model": "m",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Looking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "weather",
                        "input": {"city": "Paris", "days": [1, 2]},
                    },
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
        ],
        "tools": [{"name": "weather", "input_schema": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "any"},
        "stop_sequences": ["###"],
        "temperature": 0.2,
        "metadata": {"user_id": "u"},
        "stream": True,
    }
    there = anthropic_to_openai_request(original)
    assert_valid_openai(there.body)
    back = openai_to_anthropic_request(there.body, default_max_tokens=1)
    assert back.body == original


# -- properties --------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=20)  # utf-8: no lone surrogates
_turn = st.tuples(st.sampled_from(["user", "assistant", "system"]), _text)


@settings(max_examples=150, deadline=None)
@given(st.lists(_turn, min_size=1, max_size=8).filter(lambda turns: any(r != "system" and t.strip() for r, t in turns)))
def test_any_text_conversation_keeps_its_words_in_order(turns: list[tuple[str, str]]) -> None:
    """Whatever the roles and texts, the Anthropic request is one the SDK accepts, and reading
    its turns gives the same text per role, in order, as the OpenAI messages."""
    body = {"model": "m", "messages": [{"role": role, "content": text} for role, text in turns]}
    result = openai_to_anthropic_request(body, default_max_tokens=10).body
    assert_valid_anthropic(result)
    roles = [m["role"] for m in result["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # turns alternate

    def texts(content: Any) -> list[str]:
        return [content] if isinstance(content, str) else [b["text"] for b in content]

    got = [(m["role"], t) for m in result["messages"] for t in texts(m["content"])]
    # Whitespace-only texts say nothing and Anthropic rejects them; a prefill loses its trailing
    # whitespace, which Anthropic also rejects.
    expected = [(r, t) for r, t in turns if r != "system" and t.strip()]
    if expected[-1][0] == "assistant":
        expected[-1] = ("assistant", expected[-1][1].rstrip())
    assert got == expected
    assert [b["text"] for b in result.get("system", [])] == [t for r, t in turns if r == "system" and t.strip()]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_text, _json_values, max_size=4))
def test_tool_arguments_survive_both_translations(arguments: dict[str, Any]) -> None:
    text = json.dumps(arguments)
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": text}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
    }
    there = openai_to_anthropic_request(body, default_max_tokens=10).body
    assert there["messages"][1]["content"][0]["input"] == arguments
    back = anthropic_to_openai_request(there).body
    assert json.loads(back["messages"][1]["tool_calls"][0]["function"]["arguments"]) == arguments
