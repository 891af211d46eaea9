"""What routing looks at in a request: its text, its size, what it needs from a model.

Token counts are computed only when a rule or the context-window check asks for them, and only
when the byte size of the request cannot settle the question (a token is at least one byte).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from thrifty.core.messages import ChatRequest, ImagePart, Message, ToolResultPart

__all__ = ["WIDE_TEMPERATURE", "RequestFacts", "has_code", "last_user_text", "request_needs"]

_FENCE = "```"
# Lines that look like code: a statement keyword at the start, or a line ending in ; { or }.
_CODE_LINE = re.compile(
    r"^[ \t]*(?:def |class |import |from \S+ import |function\b|const |let |var |public |private |"
    r"#include|package |fn |func |SELECT\b|INSERT\b|UPDATE\b|return\b|if ?\(|for ?\(|while ?\().*$"
    r"|^.*[;{}][ \t]*$",
    re.MULTILINE,
)
_JSON_FORMATS = frozenset({"json_object", "json_schema"})
WIDE_TEMPERATURE = "temperature above 1"
"""The need of a request sampled at a temperature above 1 (OpenAI allows up to 2): a model served in
Anthropic's format lacks it (Anthropic's range is 0 to 1), so routing never picks one that would
refuse the request."""


def has_code(text: str) -> bool:
    """A fenced block, or at least two lines that look like code."""
    if _FENCE in text:
        return True
    found = _CODE_LINE.search(text)
    return found is not None and _CODE_LINE.search(text, found.end() + 1) is not None


def last_user_text(request: ChatRequest) -> str:
    index = request.last_user_index
    return request.messages[index].text if index is not None else ""


def request_needs(request: ChatRequest) -> frozenset[str]:
    """Capabilities the request needs from whichever model serves it."""
    needs: set[str] = set()
    if request.tools:
        needs.add("tools")
    if request.stream:
        needs.add("streaming")
    if _wants_json(request.extra):
        needs.add("json")
    if any(_has_image(message) for message in request.messages):
        needs.add("vision")
    if request.temperature is not None and request.temperature > 1:
        needs.add(WIDE_TEMPERATURE)
    return frozenset(needs)


def _wants_json(extra: Mapping[str, Any]) -> bool:
    response_format = extra.get("response_format")
    return isinstance(response_format, Mapping) and response_format.get("type") in _JSON_FORMATS


def _has_image(message: Message) -> bool:
    for part in message.parts:
        if isinstance(part, ImagePart):
            return True
        if isinstance(part, ToolResultPart) and any(isinstance(p, ImagePart) for p in part.content):
            return True
    return False


class RequestFacts:
    """One request as routing sees it. Counts are computed on first use and kept."""

    __slots__ = (
        "_code",
        "_context_tokens",
        "_count_request",
        "_count_text",
        "_lowered",
        "_lowered_known",
        "_prompt_tokens",
        "body_size",
        "feature",
        "max_output",
        "needs",
        "request",
        "tags",
        "text",
    )

    def __init__(
        self,
        request: ChatRequest,
        *,
        body_size: int,
        count_text: Callable[[str], int],
        count_request: Callable[[ChatRequest], int],
        feature: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        self.request = request
        self.text = last_user_text(request)
        self.needs = request_needs(request)
        self.feature = feature
        self.tags = tags
        self.max_output = request.max_tokens
        self.body_size = body_size
        """The request body's size in bytes: an upper bound on its input tokens."""
        self._count_text = count_text
        self._count_request = count_request
        self._prompt_tokens: int | None = None
        self._context_tokens: int | None = None
        self._code: bool | None = None
        self._lowered: str | None = None
        self._lowered_known = False

    @property
    def has_code(self) -> bool:
        if self._code is None:
            self._code = has_code(self.text)
        return self._code

    @property
    def lowered_ascii(self) -> str | None:
        """The text lower-cased, when it is ASCII (None otherwise); for keyword pre-checks."""
        if not self._lowered_known:
            self._lowered = self.text.lower() if self.text.isascii() else None
            self._lowered_known = True
        return self._lowered

    @property
    def prompt_tokens(self) -> int:
        if self._prompt_tokens is None:
            self._prompt_tokens = self._count_text(self.text) if self.text else 0
        return self._prompt_tokens

    @property
    def prompt_bytes(self) -> int:
        """An upper bound on ``prompt_tokens`` that costs nothing to compute (for ASCII text; a
        multi-byte character is still at most one token per byte)."""
        return len(self.text) * 4 if not self.text.isascii() else len(self.text)

    @property
    def context_tokens(self) -> int:
        if self._context_tokens is None:
            self._context_tokens = self._count_request(self.request)
        return self._context_tokens
