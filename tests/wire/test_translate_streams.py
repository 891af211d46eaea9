"""Streams translated event by event, then read by the real SDKs' own stream accumulators.

Upstream events are built and validated against the upstream SDK's types first, so the inputs are
streams the real APIs could send; the translated output is validated against the other SDK's
types and accumulated by that SDK (ChatCompletionStreamState, accumulate_event, or a full client
stream over a mock HTTP transport) to check the final text, tool inputs, stop reason and usage.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from pydantic import TypeAdapter

from thrifty.core.usage import Usage
from thrifty.wire.translate import AnthropicToOpenAIStream, OpenAIToAnthropicStream

_EVENT = TypeAdapter(RawMessageStreamEvent)

Event = tuple[str, dict[str, Any]]
ToolSpec = tuple[str, str, Sequence[str]]  # id, name, argument fragments


# -- building upstream streams ------------------------------------------------------------------


def anthropic_stream(
    texts: Sequence[str] = (),
    tools: Sequence[ToolSpec] = (),
    *,
    stop_reason: str = "end_turn",
    start_usage: dict[str, Any] | None = None,
    delta_usage: dict[str, Any] | None = None,
    thinking: bool = False,
) -> list[Event]:
    """An Anthropic stream as the API sends it (with a ping, and optionally a thinking block)."""
    usage = start_usage or {"input_tokens": 10, "output_tokens": 1}
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-x",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    events: list[Event] = [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]
    index = 0

    def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        nonlocal index
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1

    if thinking:
        block(
            {"type": "thinking", "thinking": "", "signature": ""},
            [{"type": "thinking_delta", "thinking": "hmm"}, {"type": "signature_delta", "signature": "s"}],
        )
    if texts:
        block({"type": "text", "text": ""}, [{"type": "text_delta", "text": t} for t in texts])
    for call_id, name, fragments in tools:
        block(
            {"type": "tool_use", "id": call_id, "name": name, "input": {}},
            [{"type": "input_json_delta", "partial_json": f} for f in fragments],
        )
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": delta_usage or {"output_tokens": 25},
    }
    events += [("message_delta", delta), ("message_stop", {"type": "message_stop"})]
    for name, data in events:
        assert data["type"] == name
        if name != "ping":
            _EVENT.validate_python(data)
    return events


def openai_stream(
    texts: Sequence[str] = (),
    tools: Sequence[ToolSpec] = (),
    *,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    usage_with_last_content: bool = False,
    repeat_tool_ids: bool = False,
) -> list[dict[str, Any]]:
    """An OpenAI stream with ``include_usage``: usage null on every chunk but the usage chunk (or,
    as some providers do, on the chunk that carries the last content and the finish_reason)."""

    def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-x",
            "choices": choices,
            "usage": None,
        }

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"content": t}) for t in texts]
    for k, (call_id, name, fragments) in enumerate(tools):
        first = {"index": k, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        chunks.append(chunk({"tool_calls": [first]}))
        for fragment in fragments:
            call: dict[str, Any] = {"index": k, "function": {"arguments": fragment}}
            if repeat_tool_ids:
                call.update(id=call_id, type="function", function={"name": name, "arguments": fragment})
            chunks.append(chunk({"tool_calls": [call]}))
    usage = usage or {
        "prompt_tokens": 50,
        "completion_tokens": 20,
        "total_tokens": 70,
        "prompt_tokens_details": {"cached_tokens": 32},
    }
    if usage_with_last_content:
        last = chunks.pop() if len(chunks) > 1 else chunk({})
        last["choices"][0]["finish_reason"] = finish_reason
        last["usage"] = usage
        chunks.append(last)
    else:
        chunks.append(chunk({}, finish_reason))
        chunks.append({**chunk(None), "usage": usage})
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    return chunks


# -- reading translated streams with the SDKs ----------------------------------------------------


def accumulate_openai(chunks: Sequence[dict[str, Any]]) -> Any:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(c))
    return state.current_completion_snapshot


def accumulate_anthropic(events: Sequence[Event]) -> Any:
    snapshot = None
    buffers: dict[int, bytes] = {}
    for name, data in events:
        assert data["type"] == name
        snapshot = accumulate_event(event=_EVENT.validate_python(data), current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


def to_openai(
    events: Sequence[Event], *, include_usage: bool = True
) -> tuple[list[dict[str, Any]], AnthropicToOpenAIStream]:
    translator = AnthropicToOpenAIStream(
        model="claude-public", completion_id="chatcmpl-x", created=123, include_usage=include_usage
    )
    chunks = [c for name, data in events for c in translator.feed(name, data)]
    return chunks + translator.finish(), translator


def to_anthropic(chunks: Sequence[dict[str, Any]]) -> tuple[list[Event], OpenAIToAnthropicStream]:
    translator = OpenAIToAnthropicStream(model="gpt-public", message_id="msg_x")
    events = [e for c in chunks for e in translator.feed(c)]
    return events + translator.finish(), translator


def _client(kind: str, body: bytes) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    if kind == "openai":
        return openai.OpenAI(api_key="k", http_client=http, max_retries=0)
    return anthropic.Anthropic(api_key="k", http_client=http, max_retries=0)


def openai_sse(chunks: Sequence[dict[str, Any]]) -> bytes:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


def anthropic_sse(events: Sequence[Event]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


# -- Anthropic -> OpenAI -------------------------------------------------------------------------

WEATHER = ("toolu_1", "weather", ['{"ci', 'ty": "Pa', 'ris"}'])
CLOCK = ("toolu_2", "clock", ["", "{}"])


def test_anthropic_text_and_tool_stream_reads_as_one_openai_completion() -> None:
    events = anthropic_stream(
        ["Let me ", "check."],
        [WEATHER, CLOCK],
        stop_reason="tool_use",
        thinking=True,
        start_usage={
            "input_tokens": 12,
            "cache_read_input_tokens": 900,
            "cache_creation_input_tokens": 40,
            "output_tokens": 1,
        },
        delta_usage={"output_tokens": 33},
    )
    chunks, translator = to_openai(events)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:] if c["choices"])
    assert chunks[-1]["choices"] == []  # the usage chunk comes last, alone
    assert all(c["usage"] is None for c in chunks[:-1])
    assert {(c["id"], c["created"]) for c in chunks} == {("chatcmpl-x", 123)}

    completion = accumulate_openai(chunks)
    message = completion.choices[0].message
    assert message.content == "Let me check."
    assert [(t.index, t.id, t.function.name, t.function.arguments) for t in message.tool_calls] == [
        (0, "toolu_1", "weather", '{"city": "Paris"}'),
        (1, "toolu_2", "clock", "{}"),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (952, 33, 985)
    assert usage.prompt_tokens_details.cached_tokens == 900
    # The gateway prices from ``translator.usage``; the client's usage says the same.
    priced = Usage.from_anthropic(translator.usage)
    assert (priced.input_tokens, priced.cache_read_tokens, priced.output_tokens) == (952, 900, 33)
    assert Usage.from_openai(usage.model_dump()).input_tokens == priced.input_tokens


def test_the_openai_sdk_streams_a_translated_anthropic_stream_end_to_end() -> None:
    chunks, _ = to_openai(anthropic_stream(["Bonjour", " !"], [WEATHER], stop_reason="tool_use"))
    client = _client("openai", openai_sse(chunks))
    with client.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "hi"}], stream_options={"include_usage": True}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert deltas == ["", "Bonjour", " !"]  # OpenAI's own first chunk also carries content ""
    assert final.choices[0].message.content == "Bonjour !"
    assert final.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert final.usage is not None
    assert final.usage.completion_tokens == 25


def test_without_include_usage_no_chunk_carries_usage() -> None:
    chunks, translator = to_openai(anthropic_stream(["hi"]), include_usage=False)
    assert all("usage" not in c for c in chunks)
    assert all(c["choices"] for c in chunks)
    assert accumulate_openai(chunks).choices[0].finish_reason == "stop"
    assert translator.usage == {"input_tokens": 10, "output_tokens": 25}  # the gateway still knows


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")],
)
def test_anthropic_stop_reasons_become_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    chunks, _ = to_openai(anthropic_stream(["x"], stop_reason=stop_reason))
    assert accumulate_openai(chunks).choices[0].finish_reason == finish_reason


def test_a_stream_cut_short_keeps_the_usage_seen_and_invents_no_finish() -> None:
    events = anthropic_stream(
        ["partial"], start_usage={"input_tokens": 70, "cache_read_input_tokens": 30, "output_tokens": 1}
    )
    cut = events[:5]  # message_start, ping, block start, one delta, block stop
    chunks, translator = to_openai(cut)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert Usage.from_anthropic(translator.usage).input_tokens == 100
    # Cut after message_delta: finish() still delivers the usage chunk the client asked for.
    chunks, _ = to_openai(events[:-1])
    assert chunks[-1]["usage"]["completion_tokens"] == 25


def test_message_delta_usage_overwrites_only_what_it_reports() -> None:
    events = anthropic_stream(
        ["x"],
        start_usage={"input_tokens": 5, "cache_read_input_tokens": 7, "output_tokens": 1},
        delta_usage={"output_tokens": 9, "input_tokens": 6, "cache_read_input_tokens": None},
    )
    _, translator = to_openai(events)
    assert translator.usage == {"input_tokens": 6, "cache_read_input_tokens": 7, "output_tokens": 9}


def test_an_anthropic_error_event_is_raised_by_the_openai_sdk() -> None:
    events = anthropic_stream(["so far"])[:4]
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    chunks, _ = to_openai([*events, ("error", error)])
    assert chunks[-1] == {
        "error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded_error"}
    }
    client = _client("openai", openai_sse(chunks))
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))


def test_unknown_and_server_tool_events_are_not_forwarded() -> None:
    translator = AnthropicToOpenAIStream(model="m", completion_id="c", created=0, include_usage=False)
    translator.feed("message_start", anthropic_stream()[0][1])
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
    }
    assert translator.feed("content_block_start", start) == []
    assert (
        translator.feed(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        )
        == []
    )
    assert translator.feed("brand_new_event", {"type": "brand_new_event"}) == []


def test_a_tool_use_start_that_already_carries_input_sends_it_as_the_first_fragment() -> None:
    translator = AnthropicToOpenAIStream(model="m", completion_id="c", created=0, include_usage=False)
    chunks = translator.feed("message_start", anthropic_stream()[0][1])
    block = {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": "é"}}
    chunks += translator.feed(
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    )
    call = accumulate_openai(chunks).choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("toolu_9", "f", {"a": "é"})


# -- OpenAI -> Anthropic -------------------------------------------------------------------------

PARIS = ("call_1", "weather", ['{"city"', ':"Paris",', '"days":[1,2]}'])
NOW = ("call:2", "now", ["{}"])


def test_openai_text_and_tool_stream_reads_as_one_anthropic_message() -> None:
    events, translator = to_anthropic(openai_stream(["Let me ", "check."], [PARIS, NOW], finish_reason="tool_calls"))
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 3
    message = accumulate_anthropic(events)
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Let me check."
    assert (message.content[1].id, message.content[1].name, message.content[1].input) == (
        "call_1",
        "weather",
        {"city": "Paris", "days": [1, 2]},
    )
    assert (message.content[2].id, message.content[2].input) == ("call_2", {})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        18,
        32,
        20,
    )
    assert translator.usage is not None
    assert Usage.from_anthropic(message.usage.model_dump()) == Usage.from_openai(translator.usage)


def test_the_anthropic_sdk_streams_a_translated_openai_stream_end_to_end() -> None:
    events, _ = to_anthropic(openai_stream(["Hel", "lo"], [PARIS], finish_reason="tool_calls"))
    client = _client("anthropic", anthropic_sse(events))
    with client.messages.stream(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == ["Hel", "lo"]
    assert final.content[1].input == {"city": "Paris", "days": [1, 2]}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 20


def test_usage_on_the_chunk_with_the_last_content_ends_the_message_after_that_content() -> None:
    events, _ = to_anthropic(openai_stream(["one ", "two"], usage_with_last_content=True))
    names = [name for name, _ in events]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    message = accumulate_anthropic(events)
    assert message.content[0].text == "one two"
    assert message.usage.output_tokens == 20


def test_finish_before_usage_waits_for_the_usage_chunk() -> None:
    chunks = openai_stream(["hi"])
    translator = OpenAIToAnthropicStream(model="m", message_id="msg")
    before_usage = [e for c in chunks[:-1] for e in translator.feed(c)]
    assert "message_delta" not in [name for name, _ in before_usage]
    assert before_usage[-1][0] == "content_block_stop"  # closed at the finish_reason
    tail = translator.feed(chunks[-1])
    assert [name for name, _ in tail] == ["message_delta", "message_stop"]
    assert translator.finish() == []


def test_finish_completes_a_stream_that_ended_early() -> None:
    chunks = openai_stream(["never fin", "ished"])[:3]
    events, translator = to_anthropic(chunks)
    assert [name for name, _ in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    message = accumulate_anthropic(events)
    assert (message.content[0].text, message.stop_reason, message.usage.output_tokens) == (
        "never finished",
        "end_turn",
        0,
    )
    assert translator.usage is None


def test_finish_reason_without_any_usage_ends_at_finish() -> None:
    chunks = [c for c in openai_stream(["x"], finish_reason="length") if c["choices"]]
    events, _ = to_anthropic(chunks)
    assert accumulate_anthropic(events).stop_reason == "max_tokens"


def test_a_stream_with_no_chunks_still_gives_a_whole_message() -> None:
    translator = OpenAIToAnthropicStream(model="m", message_id="msg")
    message = accumulate_anthropic(translator.finish())
    assert (message.content, message.stop_reason) == ([], "end_turn")


def test_a_refusal_streams_as_text_with_stop_reason_refusal() -> None:
    chunks = openai_stream()
    chunks.insert(
        1,
        {
            **chunks[1],
            "choices": [{"index": 0, "delta": {"refusal": "I can't."}, "finish_reason": None}],
            "usage": None,
        },
    )
    message = accumulate_anthropic(to_anthropic(chunks)[0])
    assert (message.content[0].text, message.stop_reason) == ("I can't.", "refusal")


def test_ids_and_names_repeated_on_every_fragment_are_not_repeated() -> None:
    events, _ = to_anthropic(openai_stream(tools=[PARIS], finish_reason="tool_calls", repeat_tool_ids=True))
    message = accumulate_anthropic(events)
    assert len(message.content) == 1
    assert (message.content[0].id, message.content[0].name, message.content[0].input) == (
        "call_1",
        "weather",
        {"city": "Paris", "days": [1, 2]},
    )


def test_other_choices_and_late_usage_do_not_change_the_message() -> None:
    chunks = openai_stream(["mine"])
    chunks.insert(2, {**chunks[1], "choices": [{"index": 1, "delta": {"content": "other"}, "finish_reason": None}]})
    translator = OpenAIToAnthropicStream(model="m", message_id="msg")
    events = [e for c in chunks for e in translator.feed(c)]
    assert accumulate_anthropic(events).content[0].text == "mine"
    late = {**chunks[-1], "usage": {"prompt_tokens": 60, "completion_tokens": 30, "total_tokens": 90}}
    assert translator.feed(late) == []
    assert translator.usage == late["usage"]  # the gateway prices the latest report


def test_interleaved_parallel_tool_fragments_reach_the_right_call() -> None:
    chunks = openai_stream(tools=[("call_a", "f", ['{"x":']), ("call_b", "g", ["{}"])], finish_reason="tool_calls")
    late = {
        **chunks[1],
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}],
    }
    chunks.insert(-2, late)  # a fragment for the first call after the second call started
    message = accumulate_anthropic(to_anthropic(chunks)[0])
    assert [(b.id, b.input) for b in message.content] == [("call_a", {"x": 1}), ("call_b", {})]


def test_an_openai_error_chunk_is_raised_by_the_anthropic_sdk() -> None:
    chunks = [
        *openai_stream(["so far"])[:2],
        {"error": {"message": "server melted", "type": "server_error", "code": None}},
    ]
    events, _ = to_anthropic(chunks)
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "server melted"}})
    client = _client("anthropic", anthropic_sse(events))
    with pytest.raises(anthropic.APIStatusError, match="server melted"):
        list(client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "hi"}], stream=True))


# -- properties --------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=60)  # utf-8: no lone surrogates
_json_objects = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)


def _split(data: st.DataObject, text: str) -> list[str]:
    """Any split of ``text`` into non-empty pieces."""
    cuts = sorted(data.draw(st.sets(st.integers(min_value=1, max_value=max(len(text) - 1, 1)), max_size=8)))
    bounds = [0, *[c for c in cuts if c < len(text)], len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if text[a:b]]


def _pieces(data: st.DataObject, text: str) -> Iterator[str]:
    yield from _split(data, text)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), text=_text, arguments=st.lists(_json_objects, max_size=3))
def test_any_split_of_text_and_arguments_reassembles_through_anthropic_to_openai(
    data: st.DataObject, text: str, arguments: list[dict[str, Any]]
) -> None:
    tools = [(f"toolu_{k}", f"tool_{k}", list(_pieces(data, json.dumps(a)))) for k, a in enumerate(arguments)]
    events = anthropic_stream(_split(data, text), tools, stop_reason="tool_use" if tools else "end_turn")
    chunks, _ = to_openai(events)
    message = accumulate_openai(chunks).choices[0].message
    assert message.content == text
    assert [json.loads(t.function.arguments) for t in message.tool_calls or []] == arguments


@settings(max_examples=100, deadline=None)
@given(data=st.data(), text=_text, arguments=st.lists(_json_objects, max_size=3), usage_with_last=st.booleans())
def test_any_split_of_text_and_arguments_reassembles_through_openai_to_anthropic(
    data: st.DataObject, text: str, arguments: list[dict[str, Any]], usage_with_last: bool
) -> None:
    tools = [(f"call_{k}", f"tool_{k}", list(_pieces(data, json.dumps(a)))) for k, a in enumerate(arguments)]
    chunks = openai_stream(
        _split(data, text),
        tools,
        finish_reason="tool_calls" if tools else "stop",
        usage_with_last_content=usage_with_last,
    )
    events, _ = to_anthropic(chunks)
    message = accumulate_anthropic(events)
    assert message.content[0].text == text
    assert [b.input for b in message.content[1:]] == arguments
    assert message.stop_reason == ("tool_use" if tools else "end_turn")
    assert message.usage.output_tokens == 20
