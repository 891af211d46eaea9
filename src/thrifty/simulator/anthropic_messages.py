"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: Anthropic's Messages API.

Wire decisions (matching the real API):

* Streams: ``message_start`` (usage with input and cache fields, ``output_tokens: 1``), then per
  block ``content_block_start`` / deltas / ``content_block_stop`` with a ``ping`` after the first
  start, ``message_delta`` (``stop_reason``, ``stop_sequence``, cumulative usage), ``message_stop``.
* Text deltas carry one token each; a ``tool_use`` block starts with ``input: {}`` and streams its
  JSON as ``input_json_delta`` pieces, the first one empty.
* A tool is called when ``tool_choice`` is ``any`` or names it, or (``auto``) when the last user
  message mentions its name; with ``auto`` a short text block comes first, as Claude writes one.
* ``thinking`` (``enabled`` or ``adaptive``) adds a thinking block whose tokens are billed as
  output and come out of ``max_tokens`` first.
* ``usage.input_tokens`` excludes cache reads and writes; ``cache_creation`` splits writes by TTL.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import tiktoken

from thrifty.core.messages import ChatRequest, Tool
from thrifty.simulator.common import ApiError, Reply, load_json_object, parse_request, seed_of
from thrifty.simulator.prompt_cache import AnthropicCacheUsage, anthropic_blocks, anthropic_cache_usage
from thrifty.simulator.schema_fill import fill_schema
from thrifty.simulator.text import cut_at_stop
from thrifty.simulator.tools import mentioned_tool, token_pieces, tool_call_tokens
from thrifty.wire.anthropic_messages import parse_anthropic_request

if TYPE_CHECKING:
    from thrifty.simulator.state import Simulator

__all__ = ["MessagesCall", "parse_messages", "respond_count_tokens", "respond_messages"]

_PREAMBLE_TOKENS = 12


@dataclass(slots=True)
class MessagesCall:
    model: str
    data: dict[str, Any]
    request: ChatRequest
    stream: bool
    stops: tuple[str, ...]
    limit: int
    tool: Tool | None
    forced: bool
    thinking: bool
    thinking_budget: int | None
    show_thinking: bool
    uses_cache: bool
    schema: Mapping[str, Any] | None = None
    """Structured output's JSON schema (``output_config.format``, or the beta ``output_format``)."""
    total_tokens: int = -1
    """Counted once, on first use (a parsed call may be reused for an identical body)."""


@dataclass(slots=True)
class _Block:
    kind: str  # "text", "tool_use" or "thinking"
    pieces: tuple[str, ...]
    tokens: int
    tool: tuple[str, str, dict[str, Any]] | None = None  # (id, name, input)
    signature: str = ""


def _parse(body: bytes, *, counting: bool) -> tuple[dict[str, Any], ChatRequest]:
    data = load_json_object(body, "anthropic")
    if counting and data.get("max_tokens") is None:
        data = {**data, "max_tokens": 1}
    request = parse_request(parse_anthropic_request, data)
    return data, request


def parse_messages(body: bytes) -> MessagesCall:
    data, request = _parse(body, counting=False)
    stops = data.get("stop_sequences")
    if stops is None:
        stops = []
    elif not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError(400, "stop_sequences: Input should be a valid list of strings")
    tool, forced = _tool_choice(data.get("tool_choice"), request)
    thinking, budget, show = _thinking(data.get("thinking"), request.max_tokens or 1)
    return MessagesCall(
        model=request.model,
        data=data,
        request=request,
        stream=request.stream,
        stops=tuple(stops),
        limit=request.max_tokens or 1,
        tool=tool,
        forced=forced,
        thinking=thinking,
        thinking_budget=budget,
        show_thinking=show,
        uses_cache=b'"cache_control"' in body,
        schema=_output_schema(data),
    )


def _output_schema(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema the answer must follow: Anthropic's structured outputs, GA as
    ``output_config.format`` and in beta as ``output_format``; both ``{"type": "json_schema",
    "schema": {...}}``."""
    config = data.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise ApiError(400, "output_config: Input should be a valid dictionary")
    found = [
        (where, value)
        for where, value in (
            ("output_config.format", (config or {}).get("format")),
            ("output_format", data.get("output_format")),
        )
        if value is not None
    ]
    if len(found) > 1:
        raise ApiError(400, "output_format: give output_config.format or output_format, not both")
    if not found:
        return None
    where, spec = found[0]
    if not isinstance(spec, dict):
        raise ApiError(400, f"{where}: Input should be a valid dictionary")
    if spec.get("type") != "json_schema":
        raise ApiError(400, f"{where}.type: Input should be 'json_schema', got {spec.get('type')!r}")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise ApiError(400, f"{where}.schema: Field required (a JSON schema object)")
    return schema


def _tool_choice(value: object, request: ChatRequest) -> tuple[Tool | None, bool]:
    if value is None:
        return mentioned_tool(request), False
    if not isinstance(value, dict):
        raise ApiError(400, "tool_choice: Input should be a valid dictionary")
    kind = value.get("type")
    if kind == "none":
        return None, False
    if kind == "auto":
        return mentioned_tool(request), False
    if kind not in ("any", "tool"):
        raise ApiError(400, f"tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none', got {kind!r}")
    if not request.tools:
        raise ApiError(400, "tool_choice: a tool_choice of type 'any' or 'tool' needs tools")
    if kind == "any":
        return mentioned_tool(request) or request.tools[0], True
    name = value.get("name")
    for tool in request.tools:
        if tool.name == name:
            return tool, True
    raise ApiError(400, f"tool_choice.name: tool {name!r} is not among the tools")


def _thinking(value: object, max_tokens: int) -> tuple[bool, int | None, bool]:
    if value is None:
        return False, None, False
    if not isinstance(value, dict):
        raise ApiError(400, "thinking: Input should be a valid dictionary")
    kind = value.get("type")
    show = value.get("display") != "omitted"
    if kind == "disabled":
        return False, None, False
    if kind == "adaptive":
        return True, None, show
    if kind != "enabled":
        raise ApiError(400, f"thinking.type: Input should be 'enabled', 'adaptive' or 'disabled', got {kind!r}")
    budget = value.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
        raise ApiError(400, "thinking.budget_tokens: Input should be a whole number of at least 1024")
    if budget >= max_tokens:
        raise ApiError(400, "`max_tokens` must be greater than `thinking.budget_tokens`.")
    return True, budget, show


def _usage(sim: Simulator, call: MessagesCall, encoding: tiktoken.Encoding) -> AnthropicCacheUsage:
    total = call.total_tokens
    if total < 0:
        total = call.total_tokens = sim.counter.count_request(call.request).input_tokens
    if not call.uses_cache:
        return AnthropicCacheUsage(total, 0, 0, 0)
    config = sim.config
    return anthropic_cache_usage(
        sim.store,
        call.model,
        anthropic_blocks(encoding, call.data),
        total,
        minimum=config.anthropic_cache_minimum(call.model),
        ttls={"5m": config.anthropic_cache_ttl_5m_s, "1h": config.anthropic_cache_ttl_1h_s},
        lookback=config.anthropic_cache_lookback_blocks,
        now=time.monotonic(),
    )


def _blocks(sim: Simulator, call: MessagesCall, encoding: tiktoken.Encoding) -> tuple[list[_Block], str, str | None]:
    """The answer's content blocks, its stop_reason and stop_sequence."""
    data = call.data
    seed = seed_of(call.model, data.get("system"), data.get("messages"), data.get("tools"), call.schema)
    bank = sim.bank
    budget = call.limit
    blocks: list[_Block] = []
    if call.thinking:
        spend = 64 * (1 + (seed >> 9) % 8)
        if call.thinking_budget is not None:
            spend = min(spend, call.thinking_budget)
        spend = min(spend, budget)
        thought = bank.answer(seed ^ 0x5A5A5A5A, spend)
        signature = hashlib.blake2b(thought.text.encode(), digest_size=48).hexdigest()
        pieces = thought.pieces if call.show_thinking else ()
        blocks.append(_Block("thinking", pieces, thought.tokens, signature=signature))
        budget -= thought.tokens
        if budget <= 0:
            return blocks, "max_tokens", None
    if call.tool is not None:
        tool = call.tool
        filled = fill_schema(tool.parameters, lambda n: bank.words(seed, n))
        arguments: dict[str, Any] = filled if isinstance(filled, dict) else {}
        text = orjson.dumps(arguments).decode()
        cost = tool_call_tokens(encoding, tool.name, text)
        preamble = None if call.forced else bank.answer(seed, min(_PREAMBLE_TOKENS, budget))
        needed = cost + (preamble.tokens if preamble is not None else 0)
        if needed <= budget:
            if preamble is not None:
                blocks.append(_Block("text", preamble.pieces, preamble.tokens))
            call_id = sim.ids.make("toolu_01", 22)
            blocks.append(_Block("tool_use", token_pieces(encoding, text), cost, (call_id, tool.name, arguments)))
            return blocks, "tool_use", None
    if call.schema is not None:  # constrained decoding: the text is JSON that follows the schema
        text = orjson.dumps(fill_schema(call.schema, lambda n: bank.words(seed, n), all_properties=True)).decode()
        tokens = encoding.encode_ordinary(text)
        if len(tokens) > budget:
            cut = encoding.decode(tokens[:budget])
            blocks.append(_Block("text", token_pieces(encoding, cut), budget))
            return blocks, "max_tokens", None
        blocks.append(_Block("text", token_pieces(encoding, text), len(tokens)))
        return blocks, "end_turn", None
    answer = bank.answer(seed, budget)
    answer = cut_at_stop(list(answer.pieces), answer.finish, call.stops, encoding)
    blocks.append(_Block("text", answer.pieces, answer.tokens))
    if answer.finish == "stop_sequence":
        return blocks, "stop_sequence", answer.stop_sequence
    return blocks, ("max_tokens" if answer.finish == "length" else "end_turn"), None


def _usage_json(usage: AnthropicCacheUsage, output: int) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation,
        "cache_read_input_tokens": usage.cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": usage.write_5m, "ephemeral_1h_input_tokens": usage.write_1h},
        "output_tokens": output,
        "service_tier": "standard",
    }


def _content_json(block: _Block) -> dict[str, Any]:
    if block.kind == "tool_use" and block.tool is not None:
        call_id, name, arguments = block.tool
        return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": "".join(block.pieces), "signature": block.signature}
    return {"type": "text", "text": "".join(block.pieces)}


def respond_messages(sim: Simulator, call: MessagesCall) -> Reply:
    encoding = sim.counter.encoding_for(call.model)
    usage = _usage(sim, call, encoding)
    blocks, stop_reason, stop_sequence = _blocks(sim, call, encoding)
    output = sum(b.tokens for b in blocks)
    headers = sim.limiter.anthropic(call.model, usage.input_tokens + usage.cache_creation, output)
    message_id = sim.ids.make("msg_01", 22)
    if call.stream:
        events = _stream(message_id, call.model, blocks, stop_reason, stop_sequence, usage, output)
        return Reply(events=events, headers=headers)
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": [_content_json(b) for b in blocks],
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": _usage_json(usage, output),
    }
    return Reply(body=orjson.dumps(message), headers=headers)


def _event(name: bytes, payload: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"


def _stream(
    message_id: str,
    model: str,
    blocks: list[_Block],
    stop_reason: str,
    stop_sequence: str | None,
    usage: AnthropicCacheUsage,
    output: int,
) -> list[bytes]:
    start = {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage_json(usage, 1),
        },
    }
    events = [_event(b"message_start", orjson.dumps(start))]
    for index, block in enumerate(blocks):
        at = str(index).encode()
        delta_head = b'{"type":"content_block_delta","index":' + at + b',"delta":'
        opening: dict[str, Any]
        if block.kind == "tool_use" and block.tool is not None:
            call_id, name, _ = block.tool
            opening = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        elif block.kind == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            opening = {"type": "text", "text": ""}
        events.append(
            _event(
                b"content_block_start",
                b'{"type":"content_block_start","index":' + at + b',"content_block":' + orjson.dumps(opening) + b"}",
            )
        )
        if index == 0:
            events.append(_event(b"ping", b'{"type": "ping"}'))
        if block.kind == "tool_use":
            empty = b'{"type":"input_json_delta","partial_json":""}}'
            events.append(_event(b"content_block_delta", delta_head + empty))
            kind, field = b"input_json_delta", b"partial_json"
        elif block.kind == "thinking":
            kind, field = b"thinking_delta", b"thinking"
        else:
            kind, field = b"text_delta", b"text"
        for piece in block.pieces:
            if piece:
                payload = b'{"type":"' + kind + b'","' + field + b'":' + orjson.dumps(piece) + b"}}"
                events.append(_event(b"content_block_delta", delta_head + payload))
        if block.kind == "thinking":
            signature = orjson.dumps({"type": "signature_delta", "signature": block.signature})
            events.append(_event(b"content_block_delta", delta_head + signature + b"}"))
        events.append(_event(b"content_block_stop", b'{"type":"content_block_stop","index":' + at + b"}"))
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": {
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_creation,
            "cache_read_input_tokens": usage.cache_read,
            "output_tokens": output,
        },
    }
    events.append(_event(b"message_delta", orjson.dumps(delta)))
    events.append(_event(b"message_stop", b'{"type":"message_stop"}'))
    return events


def respond_count_tokens(sim: Simulator, body: bytes) -> tuple[str, Reply]:
    data, request = _parse(body, counting=True)
    if b'"cache_control"' in body:  # validated as /v1/messages would
        anthropic_blocks(sim.counter.encoding_for(request.model), data)
    total = sim.counter.count_request(request).input_tokens
    return request.model, Reply(body=orjson.dumps({"input_tokens": total}))
