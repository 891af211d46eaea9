"""Anthropic ``system`` and ``messages`` -> OpenAI chat ``messages``.

Anthropic puts tool results in user turns as ``tool_result`` blocks (first in the turn); OpenAI
wants one ``role: tool`` message per result, right after the assistant message that called the
tools, and any other user content in a separate user message after them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.core import _validate as v
from thrifty.core.messages import RequestError
from thrifty.wire.translate._common import Report, data_uri, tool_arguments

__all__ = ["CACHE_NOTE", "anthropic_messages_to_openai"]

CACHE_NOTE = "cache_control markers were dropped (OpenAI caches prompt prefixes automatically)"

Part = dict[str, Any]


def anthropic_messages_to_openai(system: object, messages: object, report: Report) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system_message = _system(system, report)
    if system_message is not None:
        out.append(system_message)
    items = v.array(messages, "messages")
    if not items:
        raise RequestError("messages", "must contain at least one message")
    for i, item in enumerate(items):
        path = f"messages[{i}]"
        data = v.obj(item, path)
        role = v.string(data.get("role"), f"{path}.role")
        if role == "user":
            out.extend(_user(data.get("content"), f"{path}.content", report))
        elif role == "assistant":
            out.append(_assistant(data.get("content"), f"{path}.content", report))
        else:
            raise RequestError(f"{path}.role", f"unknown role {role!r}; expected 'user' or 'assistant'")
    return out


def _cache(block: Mapping[str, Any], report: Report) -> None:
    if block.get("cache_control") is not None:
        report.note(CACHE_NOTE)


def _text_content(parts: list[Part]) -> str | list[Part]:
    # One text part is sent as a plain string: the same request, and the common shape.
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def _system(value: object, report: Report) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"role": "system", "content": value} if value else None
    parts: list[Part] = []
    for j, item in enumerate(v.array(value, "system")):
        where = f"system[{j}]"
        block = v.obj(item, where)
        if block.get("type") != "text":
            raise RequestError(f"{where}.type", "system blocks must be text blocks")
        _cache(block, report)
        parts.append({"type": "text", "text": v.string(block.get("text"), f"{where}.text")})
    return {"role": "system", "content": _text_content(parts)} if parts else None


def _user(content: object, path: str, report: Report) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_messages: list[dict[str, Any]] = []
    parts: list[Part] = []
    for j, item in enumerate(v.array(content, path)):
        where = f"{path}[{j}]"
        block = v.obj(item, where)
        kind = v.string(block.get("type"), f"{where}.type")
        _cache(block, report)
        if kind == "tool_result":
            message, images = _tool_result(block, where, report)
            tool_messages.append(message)
            parts.extend(images)
        elif kind == "text":
            parts.append({"type": "text", "text": v.string(block.get("text"), f"{where}.text")})
        elif kind == "image":
            parts.append(_image(block, where))
        elif kind == "document":
            parts.append(_document(block, where))
        else:
            raise RequestError(f"{where}.type", f"content block type {kind!r} has no OpenAI chat equivalent")
    out = list(tool_messages)
    if parts or not tool_messages:
        out.append({"role": "user", "content": _text_content(parts) if parts else ""})
    return out


def _tool_result(block: Mapping[str, Any], path: str, report: Report) -> tuple[dict[str, Any], list[Part]]:
    """One OpenAI tool message, and the images the result carried: OpenAI tool messages hold only
    text, so images travel in the user message that follows the tool messages."""
    call_id = v.non_empty_string(block.get("tool_use_id"), f"{path}.tool_use_id")
    if block.get("is_error"):
        report.drop(f"{path}.is_error")  # OpenAI has no error flag; the text usually says so
    raw = block.get("content")
    texts: list[Part] = []
    images: list[Part] = []
    if isinstance(raw, str):
        texts.append({"type": "text", "text": raw})
    elif raw is not None:
        for k, item in enumerate(v.array(raw, f"{path}.content")):
            where = f"{path}.content[{k}]"
            inner = v.obj(item, where)
            kind = v.string(inner.get("type"), f"{where}.type")
            _cache(inner, report)
            if kind == "text":
                texts.append({"type": "text", "text": v.string(inner.get("text"), f"{where}.text")})
            elif kind == "image":
                images.append(_image(inner, where))
                report.note("images in tool results were moved to a user message after the tool messages")
            else:
                raise RequestError(f"{where}.type", f"tool result block type {kind!r} has no OpenAI equivalent")
    content: str | list[Part] = _text_content(texts) if texts else ""
    return {"role": "tool", "tool_call_id": call_id, "content": content}, images


def _image(block: Mapping[str, Any], path: str) -> Part:
    source = v.obj(block.get("source"), f"{path}.source")
    kind = source.get("type")
    if kind == "url":
        url = v.non_empty_string(source.get("url"), f"{path}.source.url")
    elif kind == "base64":
        url = data_uri(
            v.non_empty_string(source.get("media_type"), f"{path}.source.media_type"),
            v.string(source.get("data"), f"{path}.source.data"),
        )
    else:
        raise RequestError(f"{path}.source.type", f"image source {kind!r} has no OpenAI equivalent (use url or base64)")
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: Mapping[str, Any], path: str) -> Part:
    """A base64 PDF becomes an inline OpenAI file part; a plain-text document is just text."""
    source = v.obj(block.get("source"), f"{path}.source")
    kind = source.get("type")
    if kind == "base64" and source.get("media_type") == "application/pdf":
        title = block.get("title")
        return {
            "type": "file",
            "file": {
                "filename": title if isinstance(title, str) and title else "document.pdf",
                "file_data": data_uri("application/pdf", v.string(source.get("data"), f"{path}.source.data")),
            },
        }
    if kind == "text":
        return {"type": "text", "text": v.string(source.get("data"), f"{path}.source.data")}
    raise RequestError(f"{path}.source", "only base64 PDF and plain-text documents can be translated to OpenAI")


def _assistant(content: object, path: str, report: Report) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, item in enumerate(v.array(content, path)):
        where = f"{path}[{j}]"
        block = v.obj(item, where)
        kind = v.string(block.get("type"), f"{where}.type")
        _cache(block, report)
        if kind == "text":
            texts.append(v.string(block.get("text"), f"{where}.text"))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": v.non_empty_string(block.get("id"), f"{where}.id"),
                    "type": "function",
                    "function": {
                        "name": v.non_empty_string(block.get("name"), f"{where}.name"),
                        "arguments": tool_arguments(v.obj(block.get("input"), f"{where}.input")),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            report.drop(where)  # Claude's signed reasoning means nothing to an OpenAI model
        else:
            raise RequestError(f"{where}.type", f"content block type {kind!r} has no OpenAI chat equivalent")
    # OpenAI cannot interleave text and tool calls; the text comes first, as one string (text
    # blocks of one Anthropic turn are consecutive pieces of the same reply).
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message
