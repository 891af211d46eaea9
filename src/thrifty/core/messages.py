"""The normalised chat request: one shape for OpenAI and Anthropic requests.

Parsers for the two wire shapes live in ``openai_shape`` and ``anthropic_shape``; both produce
these types, so every step of the pipeline (counting, caching, routing, compression) is written
once. Fields a step does not understand travel untouched in ``ChatRequest.extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from thrifty.errors import RequestError

__all__ = [
    "ChatRequest",
    "ImagePart",
    "Message",
    "OtherPart",
    "Part",
    "RequestError",
    "Role",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolResultPart",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]
WireFormat = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL (``url``, which may be a data: URI) or by base64 ``data``."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolResultPart:
    """The result of a tool call (Anthropic puts these in user messages; OpenAI uses role=tool)."""

    tool_call_id: str
    content: tuple[TextPart | ImagePart, ...]
    is_error: bool = False
    cache_control: Mapping[str, Any] | None = None
    content_was_string: bool = False

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class OtherPart:
    """A content part thrifty does not interpret (audio, files, documents, ...), kept as sent."""

    data: Mapping[str, Any]


Part = TextPart | ImagePart | ToolResultPart | OtherPart


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """The arguments as JSON text, exactly as the model produced them."""


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...] = ()
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    content_was_string: bool = True
    """Whether the wire content was a plain string (kept so a request can be re-sent unchanged)."""

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart | ToolResultPart))


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """JSON Schema of the arguments (OpenAI ``parameters``, Anthropic ``input_schema``)."""
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat request in either API's shape, normalised. System prompts are leading messages with
    role ``system`` (or ``developer``), whichever API the request came from."""

    model: str
    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    max_tokens: int | None = None
    stream: bool = False
    temperature: float | None = None
    wire_format: WireFormat = "openai"
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Every other field of the wire request, untouched."""

    @property
    def choices(self) -> int:
        """How many completions the call asks for (OpenAI's ``n``): every bound on its output --
        budget reservations, token rate limits, cost estimates -- is per choice times this."""
        n = self.extra.get("n") if self.wire_format == "openai" else None
        return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1

    @property
    def system_messages(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.role in ("system", "developer"))

    @property
    def last_user_index(self) -> int | None:
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "user":
                return index
        return None
