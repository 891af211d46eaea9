"""Whole responses and error bodies translated between the two APIs, read back by the real SDKs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from thrifty.core.usage import Usage
from thrifty.wire.translate import (
    ResponseShapeError,
    anthropic_error_to_openai,
    anthropic_to_openai_response,
    openai_error_to_anthropic,
    openai_to_anthropic_response,
)

ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
        {"type": "text", "text": "Let me check "},
        {"type": "text", "text": "both cities."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Lyon", "units": ["C"]}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 300,
        "output_tokens": 80,
        "output_tokens_details": {"thinking_tokens": 20},
    },
}


def _client_returning(kind: str, status: int, body: Any) -> Any:
    """A real SDK client whose HTTP transport answers every call with this status and body."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json=body)

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    if kind == "openai":
        return openai.OpenAI(api_key="k", http_client=http, max_retries=0)
    return anthropic.Anthropic(api_key="k", http_client=http, max_retries=0)


def test_anthropic_message_becomes_a_chat_completion_the_openai_sdk_reads() -> None:
    Message.model_validate(ANTHROPIC_MESSAGE)  # the fixture is a real Anthropic message
    body = anthropic_to_openai_response(ANTHROPIC_MESSAGE, model="claude-public", created=1_700_000_000)
    client = _client_returning("openai", 200, body)
    completion = client.chat.completions.create(model="claude-public", messages=[{"role": "user", "content": "hi"}])
    assert isinstance(completion, ChatCompletion)
    assert completion.id == "msg_01"
    assert completion.created == 1_700_000_000
    assert completion.model == "claude-public"
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check both cities."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("toolu_1", "weather", {"city": "Paris"}),
        ("toolu_2", "weather", {"city": "Lyon", "units": ["C"]}),
    ]
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (2400, 80, 2480)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 2000
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 20


def test_converted_usage_prices_the_same_input_cache_reads_and_output() -> None:
    original = Usage.from_anthropic(ANTHROPIC_MESSAGE["usage"])
    converted = Usage.from_openai(anthropic_to_openai_response(ANTHROPIC_MESSAGE, model="m", created=0)["usage"])
    assert converted.input_tokens == original.input_tokens == 2400
    assert converted.cache_read_tokens == original.cache_read_tokens
    assert converted.output_tokens == original.output_tokens
    assert converted.reasoning_tokens == 20


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    message = {**ANTHROPIC_MESSAGE, "stop_reason": stop_reason, "content": [{"type": "text", "text": "x"}]}
    body = anthropic_to_openai_response(message, model="m", created=0)
    assert ChatCompletion.model_validate(body).choices[0].finish_reason == finish_reason


def test_a_message_with_no_text_has_null_content_only_when_it_calls_tools() -> None:
    calls_only = {**ANTHROPIC_MESSAGE, "content": ANTHROPIC_MESSAGE["content"][3:]}
    assert anthropic_to_openai_response(calls_only, model="m", created=0)["choices"][0]["message"]["content"] is None
    empty = {**ANTHROPIC_MESSAGE, "content": [], "stop_reason": "end_turn"}
    assert anthropic_to_openai_response(empty, model="m", created=0)["choices"][0]["message"]["content"] == ""


def test_created_defaults_to_now() -> None:
    body = anthropic_to_openai_response(ANTHROPIC_MESSAGE, model="m")
    assert body["created"] > 1_700_000_000


OPENAI_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    },
                    {"id": "call:b", "type": "function", "function": {"name": "now", "arguments": ""}},
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 40,
        "total_tokens": 1240,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 10},
    },
}


def test_chat_completion_becomes_a_message_the_anthropic_sdk_reads() -> None:
    ChatCompletion.model_validate(OPENAI_COMPLETION)
    body = openai_to_anthropic_response(OPENAI_COMPLETION, model="gpt-public")
    client = _client_returning("anthropic", 200, body)
    message = client.messages.create(model="gpt-public", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert isinstance(message, Message)
    assert message.model == "gpt-public"
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Checking."  # type: ignore[union-attr]
    assert [(b.id, b.name, b.input) for b in message.content[1:]] == [  # type: ignore[union-attr]
        ("call_a", "weather", {"city": "Paris"}),
        ("call_b", "now", {}),  # an id Anthropic would reject is rewritten
    ]
    assert message.usage.input_tokens == 176
    assert message.usage.cache_read_input_tokens == 1024
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.output_tokens == 40
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == 10
    before, after = Usage.from_openai(OPENAI_COMPLETION["usage"]), Usage.from_anthropic(body["usage"])
    # Every priced count is the same (Usage.from_anthropic does not read thinking_tokens, which
    # output_tokens already includes).
    assert (after.input_tokens, after.cache_read_tokens, after.cache_write_tokens, after.output_tokens) == (
        before.input_tokens,
        before.cache_read_tokens,
        before.cache_write_tokens,
        before.output_tokens,
    )


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_finish_reasons_map_to_stop_reasons(finish_reason: str, stop_reason: str) -> None:
    completion = {**OPENAI_COMPLETION, "choices": [{**OPENAI_COMPLETION["choices"][0], "finish_reason": finish_reason}]}
    assert Message.model_validate(openai_to_anthropic_response(completion, model="m")).stop_reason == stop_reason


def test_a_refusal_is_text_with_stop_reason_refusal() -> None:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": None, "refusal": "I can't help."},
        "finish_reason": "stop",
    }
    body = openai_to_anthropic_response({**OPENAI_COMPLETION, "choices": [choice]}, model="m")
    assert body["content"] == [{"type": "text", "text": "I can't help."}]
    assert body["stop_reason"] == "refusal"


def test_only_the_first_choice_is_translated_and_no_choice_is_an_error() -> None:
    second = {"index": 1, "message": {"role": "assistant", "content": "other"}, "finish_reason": "stop"}
    first = {"index": 0, "message": {"role": "assistant", "content": "first"}, "finish_reason": "stop"}
    body = openai_to_anthropic_response({**OPENAI_COMPLETION, "choices": [first, second]}, model="m")
    assert body["content"] == [{"type": "text", "text": "first"}]
    with pytest.raises(ResponseShapeError) as raised:
        openai_to_anthropic_response({**OPENAI_COMPLETION, "choices": []}, model="m")
    assert raised.value.path == "choices"


def test_malformed_upstream_responses_raise_with_a_path() -> None:
    with pytest.raises(ResponseShapeError) as raised:
        anthropic_to_openai_response(
            {**ANTHROPIC_MESSAGE, "content": [{"type": "tool_use", "id": "t", "name": "n", "input": []}]}, model="m"
        )
    assert raised.value.path == "content[0].input"
    with pytest.raises(ResponseShapeError):
        openai_to_anthropic_response({**OPENAI_COMPLETION, "choices": [{"message": None}]}, model="m")


_words = st.text(st.characters(codec="utf-8"), max_size=30)  # utf-8: no lone surrogates
_counts = st.integers(min_value=0, max_value=10**6)


@settings(max_examples=100, deadline=None)
@given(
    text=_words,
    inputs=st.lists(st.dictionaries(_words, st.integers() | _words, max_size=3), max_size=3),
    stop_reason=st.sampled_from(["end_turn", "max_tokens", "tool_use"]),
    counts=st.tuples(_counts, _counts, _counts, _counts),
)
def test_anthropic_to_openai_to_anthropic_keeps_the_meaning(
    text: str, inputs: list[dict[str, Any]], stop_reason: str, counts: tuple[int, int, int, int]
) -> None:
    uncached, read, written, output = counts
    message: dict[str, Any] = {
        **ANTHROPIC_MESSAGE,
        "content": [{"type": "text", "text": text}]
        + [{"type": "tool_use", "id": f"toolu_{i}", "name": "f", "input": x} for i, x in enumerate(inputs)],
        "stop_reason": stop_reason,
        "usage": {
            "input_tokens": uncached,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
            "output_tokens": output,
        },
    }
    back = openai_to_anthropic_response(anthropic_to_openai_response(message, model="m", created=0), model="m")
    Message.model_validate(back)
    expected_content = ([{"type": "text", "text": text}] if text else []) + message["content"][1:]
    assert back["content"] == expected_content
    assert back["stop_reason"] == stop_reason
    before, after = Usage.from_anthropic(message["usage"]), Usage.from_anthropic(back["usage"])
    # OpenAI has no cache writes: they come back as plain input, the total unchanged.
    assert (after.input_tokens, after.cache_read_tokens, after.output_tokens) == (before.input_tokens, read, output)


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            400,
            {"error": {"message": "bad", "type": "invalid_request_error", "param": "temperature", "code": None}},
            "invalid_request_error",
        ),
        (
            401,
            {"error": {"message": "key?", "type": "invalid_request_error", "code": "invalid_api_key"}},
            "authentication_error",
        ),
        (403, {"error": {"message": "no", "type": "invalid_request_error"}}, "permission_error"),
        (
            404,
            {"error": {"message": "no model", "type": "invalid_request_error", "code": "model_not_found"}},
            "not_found_error",
        ),
        (
            429,
            {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
            "rate_limit_error",
        ),
        (
            429,
            {"error": {"message": "pay up", "type": "insufficient_quota", "code": "insufficient_quota"}},
            "billing_error",
        ),
        (500, {"error": {"message": "oops", "type": "server_error"}}, "api_error"),
        (503, {"error": {"message": "busy", "type": "server_error"}}, "api_error"),
        (503, "Service Unavailable", "overloaded_error"),
        (504, None, "timeout_error"),
        (418, {}, "invalid_request_error"),
        (599, {}, "api_error"),
    ],
)
def test_openai_errors_become_anthropic_errors_the_sdk_reads(status: int, body: Any, kind: str) -> None:
    converted = openai_error_to_anthropic(status, body)
    assert converted["type"] == "error"
    assert converted["error"]["type"] == kind
    client = _client_returning("anthropic", status, converted)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body == converted
    message = converted["error"]["message"]
    if isinstance(body, dict) and body.get("error", {}).get("param"):
        assert message == "bad (parameter: temperature)"
    elif isinstance(body, str):
        assert message == body
    else:
        assert message


@pytest.mark.parametrize(
    ("status", "kind", "openai_type", "code", "exception"),
    [
        (400, "invalid_request_error", "invalid_request_error", None, openai.BadRequestError),
        (401, "authentication_error", "authentication_error", "invalid_api_key", openai.AuthenticationError),
        (402, "billing_error", "insufficient_quota", "insufficient_quota", openai.APIStatusError),
        (403, "permission_error", "permission_error", None, openai.PermissionDeniedError),
        (404, "not_found_error", "not_found_error", None, openai.NotFoundError),
        (429, "rate_limit_error", "rate_limit_error", "rate_limit_exceeded", openai.RateLimitError),
        (500, "api_error", "server_error", "api_error", openai.InternalServerError),
        (504, "timeout_error", "server_error", "timeout_error", openai.InternalServerError),
        (529, "overloaded_error", "server_error", "overloaded_error", openai.InternalServerError),
    ],
)
def test_anthropic_errors_become_openai_errors_the_sdk_reads(
    status: int, kind: str, openai_type: str, code: str | None, exception: type[Exception]
) -> None:
    body = {"type": "error", "error": {"type": kind, "message": f"{kind} happened"}, "request_id": "req_1"}
    converted = anthropic_error_to_openai(status, body)
    assert converted == {"error": {"message": f"{kind} happened", "type": openai_type, "param": None, "code": code}}
    client = _client_returning("openai", status, converted)
    with pytest.raises(exception) as raised:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    error: Any = raised.value
    assert (error.type, error.code) == (openai_type, code)
    assert f"{kind} happened" in str(error)


@pytest.mark.parametrize(
    ("convert", "body"),
    [
        (anthropic_error_to_openai, b"<html>bad gateway</html>"),
        (openai_error_to_anthropic, b"<html>bad gateway</html>"),
    ],
)
def test_error_bodies_that_are_not_json_keep_their_text(
    convert: Callable[[int, object], dict[str, Any]], body: bytes
) -> None:
    converted = convert(502, body)
    assert "<html>bad gateway</html>" in json.dumps(converted)


def test_an_anthropic_error_without_a_known_type_takes_it_from_the_status() -> None:
    assert (
        anthropic_error_to_openai(429, {"error": {"type": "brand_new_error", "message": "m"}})["error"]["code"]
        == "rate_limit_exceeded"
    )
    assert anthropic_error_to_openai(500, {})["error"]["message"] == "upstream error (HTTP 500)"
