"""When the simulated model calls a tool, and what the call costs."""

from __future__ import annotations

import tiktoken

from thrifty.core.messages import ChatRequest, TextPart, Tool, ToolResultPart

__all__ = ["mentioned_tool", "token_pieces", "tool_call_tokens"]


def mentioned_tool(request: ChatRequest) -> Tool | None:
    """The first tool whose name the last message mentions, when that message is the user's own
    words (not a tool result: answering a tool result with another call would loop forever)."""
    if not request.tools or not request.messages:
        return None
    last = request.messages[-1]
    if last.role != "user" or any(isinstance(p, ToolResultPart) for p in last.parts):
        return None
    text = "".join(p.text for p in last.parts if isinstance(p, TextPart)).lower()
    if not text:
        return None
    for tool in request.tools:
        if tool.name.lower() in text:
            return tool
    return None


def tool_call_tokens(encoding: tiktoken.Encoding, name: str, arguments: str) -> int:
    """Output tokens of a tool call: its name and its arguments' JSON text."""
    return len(encoding.encode_ordinary(name)) + len(encoding.encode_ordinary(arguments))


def token_pieces(encoding: tiktoken.Encoding, text: str | list[int]) -> tuple[str, ...]:
    """A text (or its tokens) split at token boundaries, for streaming it a token a chunk; a
    character split across tokens stays whole."""
    tokens = encoding.encode_ordinary(text) if isinstance(text, str) else text
    pieces: list[str] = []
    pending = b""
    for token in tokens:
        pending += encoding.decode_single_token_bytes(token)
        try:
            pieces.append(pending.decode("utf-8"))
        except UnicodeDecodeError:  # a character split across tokens: wait for the rest
            continue
        pending = b""
    if pending:
        pieces.append(pending.decode("utf-8", errors="replace"))
    return tuple(pieces)
