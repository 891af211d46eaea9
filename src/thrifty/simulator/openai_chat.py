"""``POST /v1/chat/completions``: OpenAI's Chat Completions, non-streaming and streaming.

Wire decisions (matching the real API):

* ``model`` is echoed as sent; ``service_tier`` is ``default``; ``system_fingerprint`` is fixed per model.
* Streams start with a role chunk (``content: ""``), send one token a chunk, end with a chunk
  holding ``finish_reason`` and an empty delta; with ``stream_options.include_usage`` every chunk
  carries ``usage: null`` and a last chunk with ``choices: []`` and the usage precedes ``[DONE]``.
* A tool call's ``finish_reason`` is ``tool_calls``, except when ``tool_choice`` names the
  function: then it is ``stop``, as OpenAI answers.
* Reasoning models (o-series, gpt-5) spend hidden reasoning tokens, counted in
  ``completion_tokens`` and ``completion_tokens_details.reasoning_tokens`` and in the
  ``max_completion_tokens`` budget; a budget used up by reasoning gives ``content: ""``, ``length``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import tiktoken

from thrifty.core.messages import ChatRequest, Tool
from thrifty.simulator.common import ApiError, Reply, fingerprint, load_json_object, parse_request, seed_of
from thrifty.simulator.prompt_cache import openai_cached_tokens, openai_canonical_tokens
from thrifty.simulator.schema_fill import fill_schema
from thrifty.simulator.tools import mentioned_tool, token_pieces, tool_call_tokens
from thrifty.wire.openai_chat import parse_openai_request

if TYPE_CHECKING:
    from thrifty.simulator.state import Simulator

__all__ = ["ChatCall", "Completion", "chat_completion", "parse_chat", "respond_chat"]

_MASK = (1 << 64) - 1
_SPREAD = 0x9E3779B97F4A7C15


@dataclass(slots=True)
class ChatCall:
    model: str
    data: dict[str, Any]
    request: ChatRequest
    stream: bool
    include_usage: bool
    n: int
    stops: tuple[str, ...]
    limit: int | None
    tool: Tool | None
    named_tool: bool
    json_mode: str | None
    schema: Mapping[str, Any] | None
    strict: bool
    prompt_tokens: int = -1
    """Counted once, on first use (a parsed call may be reused for an identical body)."""


@dataclass(slots=True)
class Choice:
    pieces: tuple[str, ...]
    """The content, in stream chunks (one token each for plain text)."""
    content: str | None
    finish: str
    tokens: int
    reasoning: int = 0
    call: tuple[str, str, str] | None = None
    """(id, name, arguments) of a tool call."""


@dataclass(slots=True)
class Completion:
    id: str
    created: int
    model: str
    choices: list[Choice]
    prompt_tokens: int
    cached_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens + c.reasoning for c in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        return sum(c.reasoning for c in self.choices)

    def usage(self) -> dict[str, Any]:
        completion = self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def parse_chat(body: bytes | dict[str, Any], model: str | None = None) -> ChatCall:
    """Validate a request; raises ``ApiError`` (400) saying what is wrong."""
    data = body if isinstance(body, dict) else load_json_object(body, "openai")
    if model is not None and data.get("model") is None:
        data["model"] = model
    request = parse_request(parse_openai_request, data)
    n = data.get("n")
    if n is None:
        n = 1
    elif isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise ApiError(400, f"Invalid value for 'n': expected a whole number from 1 to 128, got {n!r}.", param="n")
    stream = request.stream
    options = data.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise ApiError(
                400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
            )
        if not isinstance(options, dict):
            raise ApiError(400, "Invalid type for 'stream_options': expected an object.", param="stream_options")
        include_usage = options.get("include_usage") is True
    temperature = request.temperature
    if temperature is not None and not 0 <= temperature <= 2:
        message = f"Invalid 'temperature': expected a value from 0 to 2, got {temperature}."
        raise ApiError(400, message, param="temperature")
    stops = _stops(data.get("stop"))
    json_mode, schema, strict = _response_format(data.get("response_format"))
    tool, named = _tool_choice(data.get("tool_choice"), request)
    return ChatCall(
        model=request.model,
        data=data,
        request=request,
        stream=stream,
        include_usage=include_usage,
        n=n,
        stops=stops,
        limit=request.max_tokens,
        tool=tool,
        named_tool=named,
        json_mode=json_mode,
        schema=schema,
        strict=strict,
    )


def _stops(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise ApiError(400, "Invalid value for 'stop': expected a string or an array of up to 4 strings.", param="stop")


def _response_format(value: object) -> tuple[str | None, Mapping[str, Any] | None, bool]:
    if value is None:
        return None, None, False
    if not isinstance(value, dict):
        raise ApiError(400, "Invalid type for 'response_format': expected an object.", param="response_format")
    kind = value.get("type")
    if kind == "text":
        return None, None, False
    if kind == "json_object":
        return "json_object", None, False
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ApiError(
                400, "Missing required parameter: 'response_format.json_schema.name'.", param="response_format"
            )
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise ApiError(400, "Invalid type for 'response_format.json_schema.schema'.", param="response_format")
        return "json_schema", schema or {"type": "object"}, spec.get("strict") is True
    raise ApiError(
        400,
        f"Invalid value for 'response_format.type': {kind!r}; expected 'text', 'json_object' or 'json_schema'.",
        param="response_format.type",
    )


def _tool_choice(value: object, request: ChatRequest) -> tuple[Tool | None, bool]:
    tools = request.tools
    if value is not None and not tools:
        raise ApiError(
            400,
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )
    if not tools or value == "none":
        return None, False
    if value == "required":
        return mentioned_tool(request) or tools[0], False
    if value is None or value == "auto":
        return mentioned_tool(request), False
    if isinstance(value, dict) and value.get("type") == "function":
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        for tool in tools:
            if tool.name == name:
                return tool, True
        raise ApiError(
            400, f"Invalid value for 'tool_choice': no function named {name!r} in 'tools'.", param="tool_choice"
        )
    raise ApiError(
        400,
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a named function.",
        param="tool_choice",
    )


def chat_completion(sim: Simulator, call: ChatCall) -> Completion:
    """Count, cache and answer a request (no rate limits: the batch runner uses this too)."""
    model = call.model
    config = sim.config
    encoding = sim.counter.encoding_for(model)
    prompt = call.prompt_tokens
    if prompt < 0:
        prompt = call.prompt_tokens = sim.counter.count_request(call.request).input_tokens
    cached = 0
    if prompt >= config.openai_cache_min_tokens:
        data = call.data
        key = data.get("prompt_cache_key")
        namespace = (model + "\0" + (key if isinstance(key, str) else "")).encode()
        ttl = 86_400.0 if data.get("prompt_cache_retention") == "24h" else config.openai_cache_ttl_s
        cached = openai_cached_tokens(
            sim.store,
            namespace,
            openai_canonical_tokens(encoding, data, prompt),
            minimum=config.openai_cache_min_tokens,
            step=config.openai_cache_step_tokens,
            ttl=ttl,
            now=time.monotonic(),
        )
    seed = seed_of(model, call.data.get("messages"), call.data.get("tools"), call.data.get("response_format"))
    reasoning_model = config.is_reasoning_model(model)
    choices = [_choice(sim, call, encoding, (seed + i * _SPREAD) & _MASK, reasoning_model) for i in range(call.n)]
    return Completion(sim.ids.make("chatcmpl-", 29), int(time.time()), model, choices, prompt, cached)


def _choice(sim: Simulator, call: ChatCall, encoding: tiktoken.Encoding, seed: int, reasoning_model: bool) -> Choice:
    budget = call.limit
    reasoning = 0
    if reasoning_model:
        reasoning = 64 * (1 + (seed >> 7) % 8)
        if budget is not None:
            if reasoning >= budget:
                return Choice(("",), "", "length", 0, budget)
            budget -= reasoning
    bank = sim.bank
    if call.tool is not None:
        tool = call.tool
        arguments = orjson.dumps(fill_schema(tool.parameters, lambda n: bank.words(seed, n))).decode()
        tokens = tool_call_tokens(encoding, tool.name, arguments)
        if budget is None or tokens <= budget:
            call_id = sim.ids.make("call_", 24)
            finish = "stop" if call.named_tool else "tool_calls"
            pieces = token_pieces(encoding, arguments)
            return Choice(pieces, None, finish, tokens, reasoning, (call_id, tool.name, arguments))
    if call.json_mode is not None:
        if call.json_mode == "json_object":
            value: Any = {"answer": bank.answer(seed).text}
        else:
            value = fill_schema(call.schema or {}, lambda n: bank.words(seed, n), all_properties=call.strict)
        text = orjson.dumps(value).decode()
        return _json_choice(encoding, text, budget, call.stops, reasoning)
    answer = bank.answer(seed, budget, call.stops, encoding)
    finish = "stop" if answer.finish == "stop_sequence" else answer.finish
    return Choice(answer.pieces, answer.text, finish, answer.tokens, reasoning)


def _json_choice(
    encoding: tiktoken.Encoding, text: str, budget: int | None, stops: tuple[str, ...], reasoning: int
) -> Choice:
    tokens = encoding.encode_ordinary(text)
    finish = "stop"
    if budget is not None and len(tokens) > budget:
        tokens = tokens[:budget]
        finish = "length"
    for stop in stops:
        at = encoding.decode(tokens).find(stop) if stop else -1
        if at != -1:
            tokens = encoding.encode_ordinary(encoding.decode(tokens)[:at])
            finish = "stop"
    pieces = token_pieces(encoding, tokens)
    return Choice(pieces, "".join(pieces), finish, len(tokens), reasoning)


def respond_chat(sim: Simulator, call: ChatCall) -> Reply:
    completion = chat_completion(sim, call)
    estimate = completion.prompt_tokens + (call.limit if call.limit is not None else completion.completion_tokens)
    headers = sim.limiter.openai(call.model, estimate)
    if call.stream:
        return Reply(events=stream_events(completion, call.include_usage), headers=headers)
    return Reply(body=orjson.dumps(completion_json(completion)), headers=headers)


def completion_json(completion: Completion) -> dict[str, Any]:
    choices = []
    for index, choice in enumerate(completion.choices):
        message: dict[str, Any] = {"role": "assistant", "content": choice.content, "refusal": None, "annotations": []}
        if choice.call is not None:
            call_id, name, arguments = choice.call
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            ]
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": choice.finish})
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": choices,
        "usage": completion.usage(),
        "service_tier": "default",
        "system_fingerprint": fingerprint(completion.model),
    }


def stream_events(completion: Completion, include_usage: bool) -> list[bytes]:
    head = (
        b'data: {"id":'
        + orjson.dumps(completion.id)
        + b',"object":"chat.completion.chunk","created":'
        + str(completion.created).encode()
        + b',"model":'
        + orjson.dumps(completion.model)
        + b',"service_tier":"default","system_fingerprint":"'
        + fingerprint(completion.model).encode()
        + b'","choices":['
    )
    tail = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
    events: list[bytes] = []
    for index, choice in enumerate(completion.choices):
        at = b'{"index":' + str(index).encode() + b',"delta":'
        open_end = b',"logprobs":null,"finish_reason":null}'
        if choice.call is not None:
            call_id, name, _ = choice.call
            first = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                ],
                "refusal": None,
            }
            events.append(head + at + orjson.dumps(first) + open_end + tail)
            for piece in choice.pieces:
                delta = b'{"tool_calls":[{"index":0,"function":{"arguments":' + orjson.dumps(piece) + b"}}]}"
                events.append(head + at + delta + open_end + tail)
        else:
            events.append(head + at + b'{"role":"assistant","content":"","refusal":null}' + open_end + tail)
            for piece in choice.pieces:
                if piece:
                    events.append(head + at + b'{"content":' + orjson.dumps(piece) + b"}" + open_end + tail)
        finish = b',"logprobs":null,"finish_reason":"' + choice.finish.encode() + b'"}'
        events.append(head + at + b"{}" + finish + tail)
    if include_usage:
        events.append(head + b'],"usage":' + orjson.dumps(completion.usage()) + b"}\n\n")
    events.append(b"data: [DONE]\n\n")
    return events
