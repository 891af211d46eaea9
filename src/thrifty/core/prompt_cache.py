"""Anthropic prompt caching, applied for the client: ``cache_control`` breakpoints at the end of
the stable prefix of a request that carries none.

Anthropic caches a prefix only where a request marks it, and only when the prefix is long enough
for the model. A request that repeats a long system prompt, long tool definitions or a long
conversation without marking them pays full price for them every time; marked, the repeats cost a
tenth. thrifty marks, at most, the end of the system prompt (tools come before it, so they are
inside that prefix) and the end of the conversation before its last user turn -- both only when
long enough to be cached. It never moves, adds or removes content, and leaves a request that
already has breakpoints exactly as it is.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import orjson

__all__ = ["MINIMUM_CACHEABLE", "add_breakpoints", "minimum_cacheable"]

MINIMUM_CACHEABLE: tuple[tuple[str, int], ...] = (
    ("claude-3-haiku", 2048),
    ("claude-3-5-haiku", 2048),
    ("claude-haiku-3", 2048),
    ("claude-haiku-4-5", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-sonnet-4-6", 2048),
)
"""The shortest prefix Anthropic caches, by model-name prefix; 1024 tokens for the others."""

_DEFAULT_MINIMUM = 1024
_EPHEMERAL = {"type": "ephemeral"}


def minimum_cacheable(model: str) -> int:
    best = ("", _DEFAULT_MINIMUM)
    for prefix, minimum in MINIMUM_CACHEABLE:
        if model.startswith(prefix) and len(prefix) > len(best[0]):
            best = (prefix, minimum)
    return best[1]


def _has_breakpoint(value: Any) -> bool:
    if isinstance(value, dict):
        return "cache_control" in value or any(_has_breakpoint(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_breakpoint(v) for v in value)
    return False


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _mark_last_block(container: MutableMapping[str, Any], field: str) -> bool:
    """Put the breakpoint on the last block of ``container[field]`` (a string becomes one text block)."""
    value = container.get(field)
    if isinstance(value, str):
        if not value:
            return False
        container[field] = [{"type": "text", "text": value, "cache_control": dict(_EPHEMERAL)}]
        return True
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        container[field] = [*value[:-1], {**value[-1], "cache_control": dict(_EPHEMERAL)}]
        return True
    return False


def add_breakpoints(body: MutableMapping[str, Any], model: str, count: Callable[[str], int]) -> list[str]:
    """Mark the stable prefix of an Anthropic request; the places marked. ``body``'s own fields
    are replaced, never the objects inside them (they may be the client's). ``count`` estimates
    the tokens of a text."""
    if _has_breakpoint(body):
        return []
    minimum = minimum_cacheable(model)
    tools = body.get("tools") or []
    system = body.get("system")
    messages = body.get("messages") or []
    # A quick bound before counting: a token is at least one byte (the estimate scales by 1.15).
    if len(orjson.dumps(body)) * 1.2 < minimum:
        return []
    prefix = count(_text(tools)) if tools else 0
    marked: list[str] = []
    if system:
        prefix += count(_text(system))
        if prefix >= minimum and _mark_last_block(body, "system"):
            marked.append("system")
    elif tools and prefix >= minimum and isinstance(tools[-1], dict):
        body["tools"] = [*tools[:-1], {**tools[-1], "cache_control": dict(_EPHEMERAL)}]
        marked.append("tools")
    if len(messages) >= 3 and isinstance(messages[-1], dict) and messages[-1].get("role") == "user":
        history = messages[:-1]
        prefix += sum(count(_text(m.get("content", ""))) for m in history if isinstance(m, dict))
        if prefix >= minimum and isinstance(history[-1], dict):
            last = dict(history[-1])  # copies: the client's own request objects stay as they came
            if _mark_last_block(last, "content"):
                body["messages"] = [*history[:-1], last, messages[-1]]
                marked.append("history")
    return marked
