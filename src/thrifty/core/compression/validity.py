"""Whether a request body is one its API accepts: the shape parses, and the conversation is well
formed (tool calls answered by their results right after them; Anthropic's first message from
the user, no empty content). Compression checks its own output with this and sends the original
request whenever the check fails."""

from __future__ import annotations

from typing import Any

from thrifty.core.compression.wire import API, tool_call_ids, tool_result_ids
from thrifty.core.messages import RequestError
from thrifty.wire.anthropic_messages import parse_anthropic_request
from thrifty.wire.openai_chat import parse_openai_request

__all__ = ["conversation_problem", "request_problem"]


def request_problem(body: dict[str, Any], api: API) -> str | None:
    """What makes ``body`` invalid for ``api``, or None."""
    try:
        if api == "openai":
            parse_openai_request(body)
        else:
            parse_anthropic_request(body)
    except RequestError as error:
        return str(error)
    return conversation_problem(body, api)


def conversation_problem(body: dict[str, Any], api: API) -> str | None:
    """The conversation checks alone, for a body whose shape is known to parse (cheap)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: must contain at least one message"
    if not all(isinstance(m, dict) for m in messages):
        return "messages: every message must be an object"
    return _openai_problem(messages) if api == "openai" else _anthropic_problem(messages)


def _openai_problem(messages: list[Any]) -> str | None:
    index = 0
    while index < len(messages):
        message = messages[index]
        calls = tool_call_ids(message, "openai")
        if message.get("role") in ("tool", "function"):
            return f"messages[{index}]: a tool result without the assistant tool call before it"
        index += 1
        if calls:
            answered: list[str] = []
            while index < len(messages) and messages[index].get("role") in ("tool", "function"):
                answered += tool_result_ids(messages[index], "openai")
                index += 1
            if sorted(answered) != sorted(calls):
                return f"messages[{index - 1}]: tool calls {calls} answered by {answered}"
    return None


def _empty(content: Any) -> bool:
    return content in ("", []) or content is None


def _anthropic_problem(messages: list[Any]) -> str | None:
    if messages[0].get("role") != "user":
        return "messages[0]: the first message must be from the user"
    for index, message in enumerate(messages):
        final = index == len(messages) - 1
        if _empty(message.get("content")) and not (final and message.get("role") == "assistant"):
            return f"messages[{index}]: empty content"
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "text" and block.get("text") == "":
                    return f"messages[{index}]: an empty text block"
        results = tool_result_ids(message, "anthropic")
        if results:
            previous = messages[index - 1] if index > 0 else {}
            calls = tool_call_ids(previous, "anthropic")
            if not set(results) <= set(calls):
                return f"messages[{index}]: tool results {results} without their tool_use in the message before"
        calls = tool_call_ids(message, "anthropic")
        if calls and not final:
            answered = tool_result_ids(messages[index + 1], "anthropic")
            if set(calls) != set(answered):
                return f"messages[{index}]: tool_use {calls} answered by {answered}"
    return None
