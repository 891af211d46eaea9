"""Reading and rewriting messages in the wire shapes (OpenAI Chat Completions, Anthropic Messages).

Compression edits the client's own request body, so that everything it does not touch (fields
thrifty does not model, cache_control marks, thinking signatures) reaches the provider unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import orjson

__all__ = [
    "API",
    "is_system",
    "is_turn_start",
    "last_user_index",
    "map_texts",
    "message_text",
    "tool_call_ids",
    "tool_result_ids",
]

API = Literal["openai", "anthropic"]

_SYSTEM_ROLES = frozenset({"system", "developer"})


def is_system(message: Mapping[str, Any]) -> bool:
    return message.get("role") in _SYSTEM_ROLES


def _blocks(message: Mapping[str, Any]) -> list[Any]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def tool_result_ids(message: Mapping[str, Any], api: API) -> list[str]:
    if api == "openai":
        if message.get("role") in ("tool", "function"):
            return [str(message.get("tool_call_id") or message.get("name") or "")]
        return []
    return [
        str(b.get("tool_use_id", ""))
        for b in _blocks(message)
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]


def tool_call_ids(message: Mapping[str, Any], api: API) -> list[str]:
    if message.get("role") != "assistant":
        return []
    if api == "openai":
        return [str((c or {}).get("id", "")) for c in message.get("tool_calls") or () if isinstance(c, dict)]
    return [str(b.get("id", "")) for b in _blocks(message) if isinstance(b, dict) and b.get("type") == "tool_use"]


def is_turn_start(message: Mapping[str, Any], api: API) -> bool:
    """A user message that opens a turn: not one that carries tool results (Anthropic puts them
    in user messages, and they belong with the assistant's tool call before them)."""
    return message.get("role") == "user" and not tool_result_ids(message, api)


def last_user_index(messages: list[Any]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            return index
    return None


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for block in value:
            if isinstance(block, dict):
                kind = block.get("type")
                if kind == "text" and isinstance(block.get("text"), str):
                    yield block["text"]
                elif kind == "tool_result":
                    yield from _texts(block.get("content"))
                elif kind == "tool_use":
                    yield str(block.get("name", ""))
                    yield orjson.dumps(block.get("input", {})).decode()
                elif kind == "thinking" and isinstance(block.get("thinking"), str):
                    yield block["thinking"]


def message_text(message: Mapping[str, Any]) -> str:
    """Everything in a message that costs tokens as text (for counting, not for sending)."""
    content = message.get("content")
    if type(content) is str and "tool_calls" not in message:
        return content  # the common message, without the general walk
    parts = list(_texts(content))
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            function = call.get("function") or {}
            parts.append(str(function.get("name", "")))
            parts.append(str(function.get("arguments", "")))
    return "\n".join(parts)


def map_texts(message: dict[str, Any], change: Callable[[str], str]) -> dict[str, Any] | None:
    """A copy of ``message`` with ``change`` applied to each of its texts (string content, text
    blocks, tool results' texts), or None when nothing changed. Tool calls' arguments, tool_use
    inputs, thinking blocks and images are never changed."""
    content = message.get("content")
    if isinstance(content, str):
        new = change(content)
        if new == content:
            return None
        copy = dict(message)
        copy["content"] = new
        return copy
    if not isinstance(content, list):
        return None
    changed = False
    blocks: list[Any] = []
    for block in content:
        updated = block
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            new = change(block["text"])
            if new != block["text"]:
                updated = {**block, "text": new}
        elif isinstance(block, dict) and block.get("type") == "tool_result":
            inner = block.get("content")
            replaced = map_texts({"content": inner}, change) if inner is not None else None
            if replaced is not None:
                updated = {**block, "content": replaced["content"]}
        changed = changed or updated is not block
        blocks.append(updated)
    if not changed:
        return None
    copy = dict(message)
    copy["content"] = blocks
    return copy
