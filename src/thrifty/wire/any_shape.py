"""Chat documents in whichever shape a user has them: OpenAI or Anthropic, messages or a request.

The gateway knows which API a request came in on and uses the strict parser for it; files handed
to the CLI can be either, so this tries the shape the document itself suggests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.core import _validate as v
from thrifty.core.messages import ChatRequest, Message, RequestError, Tool
from thrifty.wire.anthropic_messages import parse_anthropic_messages, parse_anthropic_system, parse_anthropic_tools
from thrifty.wire.openai_chat import parse_openai_messages, parse_openai_tools

__all__ = ["parse_chat_document"]


def parse_chat_document(document: object, model: str) -> ChatRequest:
    """A JSON list of messages, or an object with ``messages`` (and optionally ``tools`` and an
    Anthropic-style ``system``), in OpenAI or Anthropic shape."""
    if isinstance(document, list):
        return ChatRequest(model=model, messages=_messages(document, "messages"))
    data = v.obj(document, "")
    if "messages" not in data:
        raise RequestError("", "a JSON object needs a 'messages' list")
    system = parse_anthropic_system(data.get("system"), "system")
    messages = _messages(data["messages"], "messages")
    tools = _tools(data["tools"], "tools") if data.get("tools") is not None else ()
    return ChatRequest(
        model=model,
        messages=system + messages,
        tools=tools,
        max_tokens=v.opt_int(data.get("max_tokens"), "max_tokens", 1),
    )


def _messages(value: object, path: str) -> tuple[Message, ...]:
    items = v.array(value, path)
    if _looks_anthropic(items):
        return parse_anthropic_messages(items, path)
    try:
        return parse_openai_messages(items, path)
    except RequestError as openai_error:
        try:
            return parse_anthropic_messages(items, path)
        except RequestError:
            raise openai_error from None


def _looks_anthropic(items: Sequence[Any]) -> bool:
    for item in items:
        content = item.get("content") if isinstance(item, Mapping) else None
        if isinstance(content, list) and any(
            isinstance(block, Mapping) and block.get("type") in ("tool_use", "tool_result", "image")
            for block in content
        ):
            return True
    return False


def _tools(value: object, path: str) -> tuple[Tool, ...]:
    items = v.array(value, path)
    if items and all(isinstance(t, Mapping) and "input_schema" in t for t in items):
        return parse_anthropic_tools(items, path)
    return parse_openai_tools(items, path)
