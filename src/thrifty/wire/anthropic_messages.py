"""Anthropic Messages requests <-> ``ChatRequest``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import orjson

from thrifty.core import _validate as v
from thrifty.core.messages import (
    ChatRequest,
    ImagePart,
    Message,
    OtherPart,
    Part,
    RequestError,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolResultPart,
)
from thrifty.core.usage import Usage

__all__ = [
    "message_text",
    "parse_anthropic_messages",
    "parse_anthropic_request",
    "parse_anthropic_system",
    "parse_anthropic_tools",
    "render_anthropic_request",
    "text_message",
]

_KNOWN = frozenset({"model", "messages", "system", "tools", "max_tokens", "stream", "temperature"})


# Anthropic's Messages reference: temperature and top_p within 0-1, top_k a count.
_NUMBER_RANGES: Final = MappingProxyType({"temperature": (0.0, 1.0), "top_p": (0.0, 1.0)})
_WHOLE_RANGES: Final = MappingProxyType({"top_k": (0.0, float(2**31))})


def _metadata(value: object, path: str) -> object:
    metadata = v.obj(value, path)
    v.opt_string(metadata.get("user_id"), f"{path}.user_id")
    return metadata


# The optional fields of Anthropic's Messages reference, each with the type it documents (system,
# tools and the sampling ranges are checked apart). Fields not listed pass through unchecked.
_FIELD_CHECKS: Final[Mapping[str, v.Check]] = MappingProxyType(
    {
        "cache_control": v.obj,
        "container": v.string_or_object,
        "context_management": v.obj,
        "diagnostics": v.obj,
        "inference_geo": v.string,
        "mcp_servers": v.array,
        "metadata": _metadata,
        "output_config": v.obj,
        "service_tier": v.string,
        "speed": v.string,
        "stop_sequences": v.strings,
        "thinking": v.obj,
        "tool_choice": v.obj,
        "user_profile_id": v.string,
    }
)


def parse_anthropic_request(body: object) -> ChatRequest:
    data = v.obj(body, "body")
    model = v.non_empty_string(data.get("model"), "model")
    max_tokens = v.opt_int(data.get("max_tokens"), "max_tokens", 1)
    if max_tokens is None:
        raise RequestError("max_tokens", "is required")
    v.sampling(data, _NUMBER_RANGES, _WHOLE_RANGES)
    v.fields(data, _FIELD_CHECKS)
    system = parse_anthropic_system(data.get("system"), "system")
    messages = parse_anthropic_messages(data.get("messages"), "messages")
    tools = parse_anthropic_tools(data.get("tools"), "tools") if data.get("tools") is not None else ()
    return ChatRequest(
        model=model,
        messages=system + messages,
        tools=tools,
        max_tokens=max_tokens,
        stream=bool(v.opt_bool(data.get("stream"), "stream")),
        temperature=v.opt_number(data.get("temperature"), "temperature"),
        wire_format="anthropic",
        extra={k: val for k, val in data.items() if k not in _KNOWN},
    )


def parse_anthropic_system(value: object, path: str = "system") -> tuple[Message, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (Message("system", (TextPart(value),) if value else ()),)
    blocks = v.array(value, path)
    parts: list[Part] = []
    for i, block in enumerate(blocks):
        where = f"{path}[{i}]"
        data = v.obj(block, where)
        if data.get("type") != "text":
            raise RequestError(f"{where}.type", "system blocks must be text blocks")
        parts.append(TextPart(v.string(data.get("text"), f"{where}.text"), _cache_control(data, where)))
    return (Message("system", tuple(parts), content_was_string=False),)


def parse_anthropic_messages(value: object, path: str = "messages") -> tuple[Message, ...]:
    items = v.array(value, path)
    if not items:
        raise RequestError(path, "must contain at least one message")
    return tuple(_message(item, f"{path}[{i}]") for i, item in enumerate(items))


def parse_anthropic_tools(value: object, path: str = "tools") -> tuple[Tool, ...]:
    tools = []
    for i, item in enumerate(v.array(value, path)):
        where = f"{path}[{i}]"
        data = v.obj(item, where)
        kind = data.get("type", "custom")
        if kind != "custom":
            raise RequestError(f"{where}.type", f"unsupported tool type {kind!r}; only custom tools are handled")
        tools.append(
            Tool(
                name=v.non_empty_string(data.get("name"), f"{where}.name"),
                description=v.opt_string(data.get("description"), f"{where}.description"),
                parameters=v.obj(data.get("input_schema"), f"{where}.input_schema"),
                cache_control=_cache_control(data, where),
            )
        )
    return tuple(tools)


def _cache_control(data: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    return v.opt_obj(data.get("cache_control"), f"{path}.cache_control")


def _message(item: object, path: str) -> Message:
    data = v.obj(item, path)
    raw_role = v.string(data.get("role"), f"{path}.role")
    if raw_role not in ("user", "assistant"):
        raise RequestError(f"{path}.role", f"unknown role {raw_role!r}; expected 'user' or 'assistant'")
    role: Role = "user" if raw_role == "user" else "assistant"
    content = data.get("content")
    if isinstance(content, str):
        return Message(role, (TextPart(content),) if content else ())
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for i, block in enumerate(v.array(content, f"{path}.content")):
        where = f"{path}.content[{i}]"
        block_data = v.obj(block, where)
        if block_data.get("type") == "tool_use":
            calls.append(
                ToolCall(
                    id=v.string(block_data.get("id"), f"{where}.id"),
                    name=v.non_empty_string(block_data.get("name"), f"{where}.name"),
                    arguments=json.dumps(v.obj(block_data.get("input"), f"{where}.input"), separators=(",", ":")),
                )
            )
        else:
            parts.append(_part(block_data, where))
    return Message(role, tuple(parts), tool_calls=tuple(calls), content_was_string=False)


def _part(data: Mapping[str, Any], path: str) -> Part:
    kind = v.string(data.get("type"), f"{path}.type")
    if kind == "text":
        return TextPart(v.string(data.get("text"), f"{path}.text"), _cache_control(data, path))
    if kind == "image":
        source = v.obj(data.get("source"), f"{path}.source")
        if source.get("type") == "url":
            return ImagePart(url=v.string(source.get("url"), f"{path}.source.url"))
        return ImagePart(
            data=v.string(source.get("data"), f"{path}.source.data"),
            media_type=v.opt_string(source.get("media_type"), f"{path}.source.media_type"),
            cache_control=_cache_control(data, path),
        )
    if kind == "tool_result":
        raw = data.get("content")
        content: tuple[TextPart | ImagePart, ...]
        if raw is None:
            content = ()
        elif isinstance(raw, str):
            content = (TextPart(raw),)
        else:
            inner = [
                _part(v.obj(b, f"{path}.content[{j}]"), f"{path}.content[{j}]")
                for j, b in enumerate(v.array(raw, f"{path}.content"))
            ]
            content = tuple(p for p in inner if isinstance(p, TextPart | ImagePart))
        return ToolResultPart(
            tool_call_id=v.string(data.get("tool_use_id"), f"{path}.tool_use_id"),
            content=content,
            is_error=bool(v.opt_bool(data.get("is_error"), f"{path}.is_error")),
            cache_control=_cache_control(data, path),
            content_was_string=isinstance(raw, str),
        )
    return OtherPart(dict(data))


def render_anthropic_request(request: ChatRequest) -> dict[str, Any]:
    """The request in Anthropic's shape. System and developer messages become the ``system``
    blocks; OpenAI tool messages become ``tool_result`` blocks in a user turn."""
    body: dict[str, Any] = dict(request.extra)
    body["model"] = request.model
    system = [p for m in request.messages if m.role in ("system", "developer") for p in m.parts]
    if system:
        body["system"] = [_render_part(p) for p in system]
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            continue
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.text,
            }
            if messages and messages[-1]["role"] == "user" and isinstance(messages[-1]["content"], list):
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
            continue
        blocks = [_render_part(p) for p in message.parts]
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": _arguments(c.arguments)}
            for c in message.tool_calls
        ]
        if message.content_was_string and not message.tool_calls:
            messages.append({"role": message.role, "content": message.text})
        else:
            messages.append({"role": message.role, "content": blocks})
    body["messages"] = messages
    if request.tools:
        body["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description is not None else {}),
                "input_schema": dict(t.parameters) or {"type": "object", "properties": {}},
                **({"cache_control": dict(t.cache_control)} if t.cache_control else {}),
            }
            for t in request.tools
        ]
    body["max_tokens"] = request.max_tokens
    if request.stream:
        body["stream"] = True
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def _arguments(text: str) -> Any:
    try:
        parsed = json.loads(text) if text else {}
    except (json.JSONDecodeError, RecursionError):
        return {"_raw": text}
    return parsed if v.within_depth(parsed) else {"_raw": text}


def _render_part(part: Part) -> dict[str, Any]:
    out: dict[str, Any]
    if isinstance(part, TextPart):
        out = {"type": "text", "text": part.text}
    elif isinstance(part, ImagePart):
        if part.data is not None:
            source = {"type": "base64", "media_type": part.media_type or "image/png", "data": part.data}
        else:
            source = {"type": "url", "url": part.url or ""}
        out = {"type": "image", "source": source}
    elif isinstance(part, ToolResultPart):
        out = {
            "type": "tool_result",
            "tool_use_id": part.tool_call_id,
            "content": part.text if part.content_was_string else [_render_part(p) for p in part.content],
        }
        if part.is_error:
            out["is_error"] = True
    else:
        return dict(part.data)
    if part.cache_control:
        out["cache_control"] = dict(part.cache_control)
    return out


def message_text(body: Mapping[str, Any]) -> str:
    """What a Message generated, as text (a tool call's input as its JSON): counted for a price
    only when the provider reported no usage."""
    parts = []
    for block in body.get("content") or ():
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            parts.append(orjson.dumps(block.get("input", {})).decode())
    return "".join(parts)


def text_message(model: str, text: str, usage: Usage) -> dict[str, Any]:
    """A whole text message answering ``text``, reporting ``usage`` in Anthropic's terms (input
    tokens exclude the cache's reads and writes)."""
    written = usage.cache_write_tokens
    return {
        "id": "msg_replay",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens - usage.cache_read_tokens - written,
            "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens,
            "cache_creation_input_tokens": written,
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage.cache_write_5m_tokens,
                "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
            },
        },
    }
