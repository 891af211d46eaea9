"""OpenAI chat ``messages`` -> Anthropic ``system`` blocks and ``messages`` turns.

The shapes differ in three ways that matter here: Anthropic has one system prompt (OpenAI has
system/developer messages anywhere), Anthropic carries tool results as ``tool_result`` blocks in a
user turn (OpenAI has ``role: tool`` messages), and Anthropic rejects empty text blocks and
empty turns that OpenAI accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.core import _validate as v
from thrifty.core.messages import RequestError
from thrifty.wire.translate._common import Report, anthropic_tool_id, parse_data_uri, tool_input

__all__ = ["openai_messages_to_anthropic"]

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

Block = dict[str, Any]


def openai_messages_to_anthropic(value: object, report: Report) -> tuple[list[Block], list[dict[str, Any]]]:
    """The ``system`` blocks and the ``messages`` of the Anthropic request."""
    items = v.array(value, "messages")
    if not items:
        raise RequestError("messages", "must contain at least one message")
    system: list[Block] = []
    turns: list[tuple[str, list[Block]]] = []
    for i, item in enumerate(items):
        path = f"messages[{i}]"
        data = v.obj(item, path)
        role = v.string(data.get("role"), f"{path}.role")
        if data.get("name") is not None:
            report.drop(f"{path}.name")  # Anthropic turns have no participant names
        if role in ("system", "developer"):
            if turns:
                report.note("system/developer messages after the first turn were moved into the system prompt")
            system.extend(_text_blocks(data.get("content"), f"{path}.content", required=True))
        elif role == "user":
            _append(turns, "user", _user_blocks(data.get("content"), f"{path}.content"), report)
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(data, path), report)
        elif role == "tool":
            _append(turns, "user", [_tool_result(data, path)], report)
        elif role == "function":
            raise RequestError(
                f"{path}.role",
                "function messages (the deprecated function-calling API) cannot be translated; use tools",
            )
        else:
            raise RequestError(f"{path}.role", f"unknown role {role!r}")
    if not turns:
        raise RequestError("messages", "has no user or assistant message with content; Anthropic needs at least one")
    _trim_prefill(turns, report)
    return system, [{"role": role, "content": _compact(blocks)} for role, blocks in turns]


def _append(turns: list[tuple[str, list[Block]]], role: str, blocks: list[Block], report: Report) -> None:
    if not blocks:
        # Anthropic rejects empty turns; an empty OpenAI message says nothing, so it is left out.
        report.note("messages with no content were left out (Anthropic rejects empty turns)")
        return
    if turns and turns[-1][0] == role:
        # Consecutive tool messages (and the user text after them) form one Anthropic user turn,
        # tool_result blocks first, as Anthropic requires.
        turns[-1][1].extend(blocks)
    else:
        turns.append((role, blocks))


def _compact(blocks: list[Block]) -> str | list[Block]:
    # A turn that is one plain text block is sent as a string: the same request to Anthropic, and
    # the shape clients (and caches keyed on the body) most often use.
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"} and blocks[0]["type"] == "text":
        text: str = blocks[0]["text"]
        return text
    return blocks


def _trim_prefill(turns: list[tuple[str, list[Block]]], report: Report) -> None:
    """A final assistant turn is a prefill; Anthropic rejects one that ends in whitespace. (Text
    blocks here are never whitespace-only, so trimming leaves some text.)"""
    role, blocks = turns[-1]
    if role != "assistant" or blocks[-1].get("type") != "text":
        return
    text = blocks[-1]["text"]
    if text != text.rstrip():
        report.note("trailing whitespace was removed from the final assistant message (Anthropic rejects it)")
        blocks[-1] = {**blocks[-1], "text": text.rstrip()}


def _text_blocks(content: object, path: str, *, required: bool) -> list[Block]:
    """String content or an array of text (and, for assistants, refusal) parts. Anthropic rejects
    text blocks that are empty or only whitespace, which say nothing, so those are left out."""
    if content is None:
        if required:
            raise RequestError(path, "is required for this role")
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks: list[Block] = []
    for j, item in enumerate(v.array(content, path)):
        where = f"{path}[{j}]"
        part = v.obj(item, where)
        kind = v.string(part.get("type"), f"{where}.type")
        if kind == "text":
            text = v.string(part.get("text"), f"{where}.text")
        elif kind == "refusal":  # an earlier refusal, echoed back: plain text to Anthropic
            text = v.string(part.get("refusal"), f"{where}.refusal")
        else:
            raise RequestError(f"{where}.type", f"only text parts are allowed here, got {kind!r}")
        if text.strip():
            blocks.append({"type": "text", "text": text})
    return blocks


def _user_blocks(content: object, path: str) -> list[Block]:
    if content is None:
        raise RequestError(path, "is required for this role")
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks: list[Block] = []
    for j, item in enumerate(v.array(content, path)):
        where = f"{path}[{j}]"
        part = v.obj(item, where)
        kind = v.string(part.get("type"), f"{where}.type")
        if kind == "text":
            text = v.string(part.get("text"), f"{where}.text")
            if text.strip():
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image(part, where))
        elif kind == "file":
            blocks.append(_document(part, where))
        elif kind == "input_audio":
            raise RequestError(f"{where}.type", "audio input has no Anthropic equivalent")
        else:
            raise RequestError(f"{where}.type", f"content part type {kind!r} has no Anthropic equivalent")
    return blocks


def _image(part: Mapping[str, Any], path: str) -> Block:
    image = v.obj(part.get("image_url"), f"{path}.image_url")
    url = v.non_empty_string(image.get("url"), f"{path}.image_url.url")
    # ``detail`` (low/high) has no Anthropic counterpart; Anthropic sizes images itself. It only
    # changes cost and resolution, not meaning, so it is dropped without failing the request.
    if url.startswith("data:"):
        parsed = parse_data_uri(url)
        if parsed is None:
            raise RequestError(f"{path}.image_url.url", "a data: URI must be base64 (data:<media type>;base64,...)")
        media_type, data = parsed
        if media_type not in _IMAGE_TYPES:
            raise RequestError(
                f"{path}.image_url.url", f"Anthropic accepts {', '.join(sorted(_IMAGE_TYPES))} images, got {media_type}"
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if not url.startswith(("http://", "https://")):
        raise RequestError(f"{path}.image_url.url", "expected an http(s) URL or a base64 data: URI")
    return {"type": "image", "source": {"type": "url", "url": url}}


def _document(part: Mapping[str, Any], path: str) -> Block:
    """An inline PDF (``file.file_data``) -> an Anthropic base64 document block. A ``file_id``
    names a file stored at OpenAI, which Anthropic cannot read."""
    file = v.obj(part.get("file"), f"{path}.file")
    data = file.get("file_data")
    if data is None:
        raise RequestError(f"{path}.file", "only inline file_data can be translated; a file_id is OpenAI-specific")
    parsed = parse_data_uri(v.string(data, f"{path}.file.file_data"))
    if parsed is None or parsed[0] != "application/pdf":
        raise RequestError(f"{path}.file.file_data", "only base64 PDF data: URIs can be translated to Anthropic")
    block: Block = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": parsed[1]},
    }
    if isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def _assistant_blocks(data: Mapping[str, Any], path: str) -> list[Block]:
    if data.get("function_call") is not None:
        raise RequestError(f"{path}.function_call", "the deprecated function_call cannot be translated; use tool_calls")
    if data.get("audio") is not None:
        raise RequestError(f"{path}.audio", "a reference to an earlier audio response has no Anthropic equivalent")
    blocks = _text_blocks(data.get("content"), f"{path}.content", required=False)
    refusal = v.opt_string(data.get("refusal"), f"{path}.refusal")
    if refusal:
        blocks.append({"type": "text", "text": refusal})
    calls = data.get("tool_calls")
    if calls is not None:
        blocks.extend(
            _tool_use(c, f"{path}.tool_calls[{k}]") for k, c in enumerate(v.array(calls, f"{path}.tool_calls"))
        )
    return blocks


def _tool_use(item: object, path: str) -> Block:
    call = v.obj(item, path)
    kind = call.get("type", "function")
    if kind != "function":
        raise RequestError(f"{path}.type", f"tool call type {kind!r} has no Anthropic equivalent")
    fn = v.obj(call.get("function"), f"{path}.function")
    arguments = fn.get("arguments", "")
    input_value = (
        arguments if isinstance(arguments, dict) else tool_input(v.string(arguments, f"{path}.function.arguments"))
    )
    return {
        "type": "tool_use",
        "id": anthropic_tool_id(v.non_empty_string(call.get("id"), f"{path}.id")),
        "name": v.non_empty_string(fn.get("name"), f"{path}.function.name"),
        "input": input_value,
    }


def _tool_result(data: Mapping[str, Any], path: str) -> Block:
    call_id = v.non_empty_string(data.get("tool_call_id"), f"{path}.tool_call_id")
    content = data.get("content")
    result: str | list[Block] = (
        content if isinstance(content, str) else _text_blocks(content, f"{path}.content", required=True)
    )
    return {"type": "tool_result", "tool_use_id": anthropic_tool_id(call_id), "content": result}
