"""A Responses API request as the equivalent Chat Completions request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.core.messages import RequestError

__all__ = ["responses_to_chat"]

# Passed through under the same name; everything else is translated, dropped (below) or refused.
_SAME = ("model", "temperature", "top_p", "user", "metadata", "parallel_tool_calls", "service_tier", "top_logprobs")
_PASSED = ("prompt_cache_key", "safety_identifier")
_DROPPED = frozenset({"store", "include", "truncation", "stream_options", "prompt_cache_retention"})
"""Fields that change nothing thrifty can serve: storage of the response (thrifty keeps none; the
ledger has the call), extra output to include, truncation of stored conversations."""
_STATEFUL = ("previous_response_id", "conversation", "background", "prompt")
_TRANSLATED = frozenset(
    {"input", "instructions", "max_output_tokens", "tools", "tool_choice", "text", "stream", "reasoning"}
)


def responses_to_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Chat Completions request equivalent to a Responses request; ``RequestError`` names
    what cannot be expressed."""
    for name in _STATEFUL:
        if body.get(name) is not None:
            raise RequestError(name, "thrifty keeps no conversation state; send the whole input in `input`")
    unknown = sorted(set(body) - set(_SAME) - set(_PASSED) - _DROPPED - _TRANSLATED - set(_STATEFUL))
    if unknown:
        raise RequestError(unknown[0], "is not supported on /v1/responses by this gateway")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model", "is required (a string)")
    chat: dict[str, Any] = {name: body[name] for name in (*_SAME, *_PASSED) if name in body}
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise RequestError("instructions", "expected a string")
        messages.append({"role": "system", "content": instructions})
    messages += _input_messages(body.get("input"))
    chat["messages"] = messages
    limit = body.get("max_output_tokens")
    if limit is not None:
        chat["max_completion_tokens"] = limit
    if "tools" in body:
        chat["tools"] = _tools(body["tools"])
    if "tool_choice" in body:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    text = body.get("text")
    if text is not None:
        response_format = _response_format(text)
        if response_format is not None:
            chat["response_format"] = response_format
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise RequestError("reasoning", "expected an object")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the usage a response.completed carries
    elif body.get("stream") not in (None, False):
        raise RequestError("stream", "expected a boolean")
    return chat


def _input_messages(value: object) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise RequestError("input", "is required: a string, or a non-empty list of input items")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise RequestError(where, "expected an object")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = {
                "id": _string(item.get("call_id"), f"{where}.call_id"),
                "type": "function",
                "function": {
                    "name": _string(item.get("name"), f"{where}.name"),
                    "arguments": _string(item.get("arguments"), f"{where}.arguments"),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _parts_text(output, f"{where}.output")
            call_id = _string(item.get("call_id"), f"{where}.call_id")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        else:
            raise RequestError(f"{where}.type", f"{kind!r} input items are not supported by this gateway")
    return messages


def _message(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise RequestError(f"{where}.role", "expected user, assistant, system or developer")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise RequestError(f"{where}.content", "expected a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        if not isinstance(part, dict):
            raise RequestError(at, "expected an object")
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": _string(part.get("text"), f"{at}.text")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": _string(part.get("refusal"), f"{at}.refusal")})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise RequestError(f"{at}.image_url", "expected a URL or data URL (file_id images are not supported)")
            image: dict[str, Any] = {"url": url}
            if part.get("detail") is not None:
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise RequestError(f"{at}.type", f"{kind!r} content parts are not supported by this gateway")
    if role == "assistant":  # chat takes an assistant turn's text, not parts of images
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _parts_text(value: object, where: str) -> str:
    if not isinstance(value, list):
        raise RequestError(where, "expected a string or a list of input_text parts")
    texts = []
    for index, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") != "input_text":
            raise RequestError(f"{where}[{index}]", "expected an input_text part")
        texts.append(_string(part.get("text"), f"{where}[{index}].text"))
    return "".join(texts)


def _tools(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise RequestError("tools", "expected a list")
    tools = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise RequestError(where, "expected an object")
        if tool.get("type") != "function":
            raise RequestError(f"{where}.type", f"{tool.get('type')!r} tools are not supported; function tools are")
        function: dict[str, Any] = {"name": _string(tool.get("name"), f"{where}.name")}
        for name in ("description", "parameters", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: object) -> object:
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function":
        return {"type": "function", "function": {"name": _string(value.get("name"), "tool_choice.name")}}
    raise RequestError("tool_choice", "expected auto, none, required or {type: function, name}")


def _response_format(text: object) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        raise RequestError("text", "expected an object")
    spec = text.get("format")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise RequestError("text.format", "expected an object")
    kind = spec.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema: dict[str, Any] = {"name": _string(spec.get("name"), "text.format.name")}
        for name in ("schema", "strict", "description"):
            if spec.get(name) is not None:
                schema[name] = spec[name]
        return {"type": "json_schema", "json_schema": schema}
    raise RequestError("text.format.type", "expected text, json_object or json_schema")


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise RequestError(where, "expected a string")
    return value
