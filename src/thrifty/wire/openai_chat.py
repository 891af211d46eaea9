"""OpenAI Chat Completions requests <-> ``ChatRequest``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
    "chunk_choices",
    "completion_text",
    "first_choice",
    "first_message_text",
    "parse_openai_messages",
    "parse_openai_request",
    "parse_openai_tools",
    "render_openai_request",
    "text_completion",
]

_ROLES: frozenset[str] = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_KNOWN = frozenset({"model", "messages", "tools", "max_tokens", "max_completion_tokens", "stream", "temperature"})


# OpenAI's Chat Completions reference: the ranges it documents (and enforces with a 400).
_NUMBER_RANGES: Final = MappingProxyType(
    {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "frequency_penalty": (-2.0, 2.0), "presence_penalty": (-2.0, 2.0)}
)
_WHOLE_RANGES: Final = MappingProxyType({"n": (1.0, 128.0), "top_logprobs": (0.0, 20.0)})
_TOOL_CHOICES = frozenset({"none", "auto", "required"})
_LOGIT_BIAS = (-100.0, 100.0)


def _stream_options(value: object, path: str) -> object:
    options = v.obj(value, path)
    for key in ("include_usage", "include_obfuscation"):
        v.opt_bool(options.get(key), f"{path}.{key}")
    return options


def _tool_choice(value: object, path: str) -> object:
    if isinstance(value, str) and value not in _TOOL_CHOICES:
        raise RequestError(path, f"expected one of {', '.join(sorted(_TOOL_CHOICES))} or an object, got {value!r}")
    return v.string_or_object(value, path)


def _logit_bias(value: object, path: str) -> object:
    low, high = _LOGIT_BIAS
    for token, bias in v.obj(value, path).items():
        number = v.opt_number(bias, f"{path}.{token}")
        if number is None or not low <= number <= high:
            raise RequestError(f"{path}.{token}", f"must be a number between {low:g} and {high:g}")
    return value


# The optional fields of OpenAI's Chat Completions reference, each with the type it documents (the
# sampling ranges above are checked apart). Fields not listed pass through unchecked: a field
# OpenAI adds tomorrow must not be refused today.
_FIELD_CHECKS: Final[Mapping[str, v.Check]] = MappingProxyType(
    {
        "audio": v.obj,
        "function_call": v.string_or_object,
        "functions": v.array,
        "logit_bias": _logit_bias,
        "logprobs": v.boolean,
        "metadata": v.string_map,
        "modalities": v.strings,
        "moderation": v.obj,
        "parallel_tool_calls": v.boolean,
        "prediction": v.obj,
        "prompt_cache_key": v.string,
        "prompt_cache_options": v.obj,
        "prompt_cache_retention": v.string,
        "reasoning_effort": v.string,
        "response_format": v.obj,
        "safety_identifier": v.string,
        "seed": v.integer,
        "service_tier": v.string,
        "stop": v.string_or_strings,
        "store": v.boolean,
        "stream_options": _stream_options,
        "tool_choice": _tool_choice,
        "user": v.string,
        "verbosity": v.string,
        "web_search_options": v.obj,
    }
)


def parse_openai_request(body: object) -> ChatRequest:
    data = v.obj(body, "body")
    model = v.non_empty_string(data.get("model"), "model")
    messages = parse_openai_messages(data.get("messages"), "messages")
    tools = parse_openai_tools(data.get("tools"), "tools") if data.get("tools") is not None else ()
    max_tokens = v.opt_int(data.get("max_completion_tokens"), "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = v.opt_int(data.get("max_tokens"), "max_tokens", 1)
    v.sampling(data, _NUMBER_RANGES, _WHOLE_RANGES)
    v.fields(data, _FIELD_CHECKS)
    return ChatRequest(
        model=model,
        messages=messages,
        tools=tools,
        max_tokens=max_tokens,
        stream=bool(v.opt_bool(data.get("stream"), "stream")),
        temperature=v.opt_number(data.get("temperature"), "temperature"),
        wire_format="openai",
        extra={k: val for k, val in data.items() if k not in _KNOWN},
    )


def parse_openai_messages(value: object, path: str = "messages") -> tuple[Message, ...]:
    items = v.array(value, path)
    if not items:
        raise RequestError(path, "must contain at least one message")
    return tuple(_plain_message(item) or _message(item, f"{path}[{i}]") for i, item in enumerate(items))


def parse_openai_tools(value: object, path: str = "tools") -> tuple[Tool, ...]:
    tools = []
    for i, item in enumerate(v.array(value, path)):
        where = f"{path}[{i}]"
        tool = v.obj(item, where)
        kind = tool.get("type", "function")
        if kind != "function":
            raise RequestError(f"{where}.type", f"unsupported tool type {kind!r}; expected 'function'")
        fn = v.obj(tool.get("function"), f"{where}.function")
        tools.append(
            Tool(
                name=v.non_empty_string(fn.get("name"), f"{where}.function.name"),
                description=v.opt_string(fn.get("description"), f"{where}.function.description"),
                parameters=v.opt_obj(fn.get("parameters"), f"{where}.function.parameters") or {},
            )
        )
    return tuple(tools)


_PLAIN_ROLES: frozenset[str] = frozenset({"system", "developer", "user", "assistant"})


def _plain_message(item: object) -> Message | None:
    """The common message, {"role": ..., "content": "text"}, without the general checks of
    ``_message`` (they cost more than everything else the gateway does to a request); None for
    any other shape."""
    if type(item) is dict and len(item) == 2:
        role, content = item.get("role"), item.get("content")
        if type(content) is str and type(role) is str and role in _PLAIN_ROLES:
            plain: Role = role  # type: ignore[assignment]  # checked against _PLAIN_ROLES
            return Message(plain, (TextPart(content),) if content else ())
    return None


def _message(item: object, path: str) -> Message:
    plain = _plain_message(item)
    if plain is not None:
        return plain
    data = v.obj(item, path)
    role = v.string(data.get("role"), f"{path}.role")
    if role not in _ROLES:
        raise RequestError(f"{path}.role", f"unknown role {role!r}; expected one of {', '.join(sorted(_ROLES))}")
    if role == "function":  # the deprecated shape of a tool result
        role = "tool"
    content = data.get("content")
    parts: tuple[Part, ...]
    if content is None:
        if role != "assistant":
            raise RequestError(f"{path}.content", "is required for this role")
        parts, was_string = (), False
    elif isinstance(content, str):
        parts, was_string = ((TextPart(content),) if content else ()), True
    else:
        parts = tuple(_part(p, f"{path}.content[{i}]") for i, p in enumerate(v.array(content, f"{path}.content")))
        was_string = False
    tool_calls: tuple[ToolCall, ...] = ()
    if data.get("tool_calls") is not None:
        tool_calls = tuple(
            _tool_call(c, f"{path}.tool_calls[{i}]")
            for i, c in enumerate(v.array(data["tool_calls"], f"{path}.tool_calls"))
        )
    tool_call_id = v.opt_string(data.get("tool_call_id"), f"{path}.tool_call_id")
    if role == "tool" and tool_call_id is None and data.get("name") is None:
        raise RequestError(f"{path}.tool_call_id", "is required for a tool message")
    narrowed: Role = role  # type: ignore[assignment]  # checked against _ROLES above
    return Message(
        role=narrowed,
        parts=parts,
        name=v.opt_string(data.get("name"), f"{path}.name"),
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
        content_was_string=was_string,
    )


def _part(item: object, path: str) -> Part:
    data = v.obj(item, path)
    kind = v.string(data.get("type"), f"{path}.type")
    if kind == "text":
        return TextPart(v.string(data.get("text"), f"{path}.text"))
    if kind == "image_url":
        image = v.obj(data.get("image_url"), f"{path}.image_url")
        return ImagePart(
            url=v.non_empty_string(image.get("url"), f"{path}.image_url.url"),
            detail=v.opt_string(image.get("detail"), f"{path}.image_url.detail"),
        )
    return OtherPart(dict(data))


def _tool_call(item: object, path: str) -> ToolCall:
    data = v.obj(item, path)
    fn = v.obj(data.get("function"), f"{path}.function")
    arguments = fn.get("arguments", "")
    if not isinstance(arguments, str):  # some clients send an object; the API wants JSON text
        arguments = json.dumps(arguments, separators=(",", ":"))
    return ToolCall(
        id=v.string(data.get("id"), f"{path}.id"),
        name=v.non_empty_string(fn.get("name"), f"{path}.function.name"),
        arguments=arguments,
    )


def render_openai_request(request: ChatRequest) -> dict[str, Any]:
    """The request in OpenAI's shape (the inverse of ``parse_openai_request``)."""
    body: dict[str, Any] = dict(request.extra)
    body["model"] = request.model
    body["messages"] = [m for message in request.messages for m in _render_message(message)]
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description is not None else {}),
                    "parameters": dict(t.parameters),
                },
            }
            for t in request.tools
        ]
    if request.max_tokens is not None:
        body["max_tokens" if "max_completion_tokens" not in body else "max_completion_tokens"] = request.max_tokens
    if request.stream:
        body["stream"] = True
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def _render_message(message: Message) -> list[dict[str, Any]]:
    results = [p for p in message.parts if isinstance(p, ToolResultPart)]
    if results:  # an Anthropic-style user turn carrying tool results: one tool message each
        rendered = [{"role": "tool", "tool_call_id": r.tool_call_id, "content": r.text} for r in results]
        rest = [p for p in message.parts if not isinstance(p, ToolResultPart)]
        if rest:
            rendered.append(_render_message(Message(message.role, tuple(rest), message.name))[0])
        return rendered
    out: dict[str, Any] = {"role": message.role}
    if message.name is not None:
        out["name"] = message.name
    if message.content_was_string and all(isinstance(p, TextPart) for p in message.parts):
        out["content"] = message.text
    elif message.parts:
        out["content"] = [_render_part(p) for p in message.parts]
    else:
        out["content"] = None if message.tool_calls else ""
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return [out]


def _render_part(part: Part) -> Mapping[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        url = part.url or f"data:{part.media_type or 'image/png'};base64,{part.data or ''}"
        image: dict[str, Any] = {"url": url}
        if part.detail is not None:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, OtherPart):
        return dict(part.data)
    return {"type": "text", "text": part.text}


# -- answers: where the Chat Completions response and chunk shapes are read ------------------------


def first_choice(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A completion's first choice, or None when it has none (not a response)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    return choices[0]


def chunk_choices(chunk: Mapping[str, Any]) -> Sequence[dict[str, Any]]:
    """A stream chunk's choices (none in the usage chunk)."""
    return chunk.get("choices") or ()


def completion_text(body: Mapping[str, Any]) -> str:
    """What a completion generated, every choice's text and tool-call arguments: what thrifty
    counts when a provider reports no usage."""
    parts = []
    for choice in body.get("choices") or ():
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        for call in message.get("tool_calls") or ():
            parts.append(str((call.get("function") or {}).get("arguments", "")))
    return "".join(parts)


def first_message_text(raw: bytes | None) -> str | None:
    """The first choice's message text of a raw completion; None when there is none."""
    if not raw:
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    choice = first_choice(body) if isinstance(body, dict) else None
    content = (choice.get("message") or {}).get("content") if choice is not None else None
    return content if isinstance(content, str) else None


def text_completion(model: str, text: str, usage: Usage) -> dict[str, Any]:
    """A whole one-choice chat completion answering ``text``, reporting ``usage`` (a replayed answer)."""
    return {
        "id": "chatcmpl-replay",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        },
    }
