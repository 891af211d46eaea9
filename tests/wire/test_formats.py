"""The table of wire formats: each format's parts agree with one another (a request rendered and
parsed again is the same request; an answer replayed as a stream adds up to the same answer), and
an unknown format is named in the error."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from thrifty.core.usage import Usage
from thrifty.wire.formats import ANTHROPIC_MESSAGES, FORMATS, OPENAI_CHAT, WireFormat, wire_format

OPENAI_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital.", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
}
ANTHROPIC_ANSWER: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [
        {"type": "text", "text": "Paris is the capital."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 9},
}
REQUESTS: dict[str, dict[str, Any]] = {
    "openai": {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
        "temperature": 0,
    },
    "anthropic": {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Capital of France?"}],
    },
}
ANSWERS = {"openai": OPENAI_ANSWER, "anthropic": ANTHROPIC_ANSWER}


@pytest.mark.parametrize("wire", FORMATS.values(), ids=list(FORMATS))
def test_a_request_rendered_then_parsed_renders_the_same_body(wire: WireFormat) -> None:
    body = wire.render_request(wire.parse_request(REQUESTS[wire.name]))
    assert wire.render_request(wire.parse_request(body)) == body
    assert body["model"] == REQUESTS[wire.name]["model"]


@pytest.mark.parametrize("wire", FORMATS.values(), ids=list(FORMATS))
def test_an_answer_replayed_as_a_stream_adds_up_to_the_same_answer(wire: WireFormat) -> None:
    answer = ANSWERS[wire.name]
    accumulator = wire.accumulator()
    for name, data in wire.replay(answer, True):
        accumulator.feed_event(name, orjson.loads(orjson.dumps(data)))
    rebuilt = accumulator.result()
    assert wire.answer_text(rebuilt) == wire.answer_text(answer)
    assert wire.usage(rebuilt["usage"]) == wire.usage(answer["usage"])


def test_each_format_reads_its_own_usage_and_text() -> None:
    assert OPENAI_CHAT.usage(OPENAI_ANSWER["usage"]) == Usage(input_tokens=12, output_tokens=5)
    assert OPENAI_CHAT.answer_text(OPENAI_ANSWER) == "Paris is the capital."
    assert ANTHROPIC_MESSAGES.usage(ANTHROPIC_ANSWER["usage"]) == Usage(input_tokens=12, output_tokens=9)
    assert ANTHROPIC_MESSAGES.answer_text(ANTHROPIC_ANSWER) == 'Paris is the capital.{"city":"Paris"}'


def test_errors_come_in_the_shape_each_sdk_reads() -> None:
    openai = orjson.loads(OPENAI_CHAT.error_body(400, "bad", "invalid_request_error", None))
    assert openai == {
        "error": {"message": "bad", "type": "invalid_request_error", "code": "invalid_request_error", "param": None}
    }
    anthropic = orjson.loads(ANTHROPIC_MESSAGES.error_body(400, "bad", "invalid_request_error", None))
    assert anthropic == {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}


def test_an_unknown_format_is_named() -> None:
    assert wire_format("anthropic") is ANTHROPIC_MESSAGES
    with pytest.raises(KeyError, match=r"'gemini'.*openai, anthropic"):
        wire_format("gemini")
