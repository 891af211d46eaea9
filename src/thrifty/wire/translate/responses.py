"""Whole (non-streamed) responses: Anthropic ``Message`` <-> OpenAI ``ChatCompletion``.

Only what a client of the other API can use is carried over: text, tool calls, why the model
stopped, and usage (converted so that ``Usage.from_openai`` / ``Usage.from_anthropic`` of the
result see the same total input, cache reads and output as the original). Thinking blocks and
server-tool blocks have no OpenAI chat counterpart and are left out; only ``choices[0]`` of an
OpenAI completion is translated (requests with ``n`` > 1 are rejected upstream of this).

Error bodies are translated by ``openai_error_to_anthropic`` / ``anthropic_error_to_openai``,
re-exported here from ``errors``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.wire.translate._common import (
    ResponseShapeError,
    anthropic_tool_id,
    anthropic_usage_from_openai,
    finish_reason_from_anthropic,
    openai_usage_from_anthropic,
    stop_reason_from_openai,
    tool_arguments,
    tool_input,
)
from thrifty.wire.translate.errors import anthropic_error_to_openai, openai_error_to_anthropic

__all__ = [
    "ResponseShapeError",
    "anthropic_error_to_openai",
    "anthropic_to_openai_response",
    "openai_error_to_anthropic",
    "openai_to_anthropic_response",
]


def _obj(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ResponseShapeError(path, "expected an object")
    return value


def _list(value: object, path: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise ResponseShapeError(path, "expected an array")
    return value


def _str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ResponseShapeError(path, "expected a string")
    return value


def anthropic_to_openai_response(
    message: Mapping[str, Any], *, model: str, created: int | None = None
) -> dict[str, Any]:
    """``created`` defaults to now (OpenAI's field is the Unix time the completion was made)."""
    msg = _obj(message, "message")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, item in enumerate(_list(msg.get("content"), "content")):
        where = f"content[{i}]"
        block = _obj(item, where)
        kind = block.get("type")
        if kind == "text":
            texts.append(_str(block.get("text"), f"{where}.text"))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": _str(block.get("id"), f"{where}.id"),
                    "type": "function",
                    "function": {
                        "name": _str(block.get("name"), f"{where}.name"),
                        "arguments": tool_arguments(_obj(block.get("input"), f"{where}.input")),
                    },
                }
            )
        # thinking, redacted_thinking and server-tool blocks: nothing an OpenAI client can use.
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        reply["tool_calls"] = calls
    usage = msg.get("usage")
    return {
        "id": _str(msg.get("id"), "id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason_from_anthropic(msg.get("stop_reason")),
            }
        ],
        "usage": openai_usage_from_anthropic(usage if isinstance(usage, Mapping) else {}),
    }


def openai_to_anthropic_response(completion: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    data = _obj(completion, "completion")
    choices = _list(data.get("choices"), "choices")
    if not choices:
        raise ResponseShapeError("choices", "an OpenAI completion with no choices has nothing to translate")
    choice = _obj(choices[0], "choices[0]")
    reply = _obj(choice.get("message"), "choices[0].message")
    content: list[dict[str, Any]] = []
    text = reply.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = reply.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal)
    if refused:
        content.append({"type": "text", "text": refusal})
    for k, item in enumerate(reply.get("tool_calls") or ()):
        where = f"choices[0].message.tool_calls[{k}]"
        call = _obj(item, where)
        fn = _obj(call.get("function"), f"{where}.function")
        content.append(
            {
                "type": "tool_use",
                "id": anthropic_tool_id(_str(call.get("id"), f"{where}.id")),
                "name": _str(fn.get("name"), f"{where}.function.name"),
                "input": tool_input(_str(fn.get("arguments", ""), f"{where}.function.arguments")),
            }
        )
    usage = data.get("usage")
    return {
        "id": _str(data.get("id"), "id"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason_from_openai(choice.get("finish_reason"), refused=refused),
        "stop_sequence": None,
        "usage": anthropic_usage_from_openai(usage if isinstance(usage, Mapping) else {}),
    }
