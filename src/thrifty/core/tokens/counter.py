"""Counting the input tokens of a chat request, and where they go."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import tiktoken

from thrifty.core.messages import ChatRequest, ImagePart, Message, OtherPart, TextPart, Tool, ToolResultPart
from thrifty.core.tokens.encodings import Encodings
from thrifty.core.tokens.schemes import CountingScheme, ToolConstants, scheme_for

__all__ = ["TokenBreakdown", "TokenCount", "TokenCounter"]

# OpenAI bills an image by its size; without decoding it we assume a 1024x1024 image at high
# detail (85 + 4 tiles x 170), and flag the count approximate.
_IMAGE_LOW_DETAIL = 85
_IMAGE_ASSUMED = 765
_TOOL_CALL_OVERHEAD = 3
_SCHEME_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class TokenBreakdown:
    """Where a request's input tokens go. The parts always add up to the total."""

    system: int = 0
    tools: int = 0
    history: int = 0
    last_user_message: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.system + self.tools + self.history + self.last_user_message + self.other

    def as_dict(self) -> dict[str, int]:
        return {
            "system": self.system,
            "tools": self.tools,
            "history": self.history,
            "last_user_message": self.last_user_message,
            "other": self.other,
        }


@dataclass(frozen=True, slots=True)
class TokenCount:
    model: str
    input_tokens: int
    approximate: bool
    encoding: str
    method: str
    breakdown: TokenBreakdown
    reasons: tuple[str, ...] = field(default=())
    """Why the count is approximate, when it is."""


class TokenCounter:
    """Counts tokens for any model; OpenAI models exactly, the others as flagged estimates."""

    def __init__(self, encodings: Encodings | None = None) -> None:
        self._encodings = encodings if encodings is not None else Encodings()
        self._schemes: dict[str, CountingScheme] = {}

    def scheme(self, model: str) -> CountingScheme:
        scheme = self._schemes.get(model)
        if scheme is None:
            if len(self._schemes) >= _SCHEME_CACHE_LIMIT:
                self._schemes.clear()
            scheme = self._schemes[model] = scheme_for(model)
        return scheme

    def encoding_for(self, model: str) -> tiktoken.Encoding:
        return self._encodings.get(self.scheme(model).encoding)

    def text_tokens(self, text: str, model: str) -> int:
        """``count_text(text, model).input_tokens`` without the report: for hot loops that count
        many short texts (compression counts each message of a conversation)."""
        scheme = self.scheme(model)
        return _scaled(len(self._encodings.get(scheme.encoding).encode_ordinary(text)), scheme.scale)

    def count_text(self, text: str, model: str) -> TokenCount:
        """Tokens of a bare text, no chat framing."""
        scheme = self.scheme(model)
        raw = len(self._encodings.get(scheme.encoding).encode_ordinary(text))
        tokens = _scaled(raw, scheme.scale)
        method = f"{scheme.encoding} encoding of the text, no chat framing (exact)" if scheme.exact else scheme.method
        return TokenCount(
            model=model,
            input_tokens=tokens,
            approximate=not scheme.exact,
            encoding=scheme.encoding,
            method=method,
            breakdown=TokenBreakdown(last_user_message=tokens),
            reasons=() if scheme.exact else (scheme.method,),
        )

    def count_request(self, request: ChatRequest, model: str | None = None) -> TokenCount:
        """Input tokens of a chat request as the model will see it."""
        model = model or request.model
        scheme = self.scheme(model)
        run = _Run(self._encodings.get(scheme.encoding), scheme)
        last_user = request.last_user_index
        system = history = last = 0
        for index, message in enumerate(request.messages):
            tokens = run.message(message)
            if message.role in ("system", "developer"):
                system += tokens
            elif index == last_user:
                last += tokens
            else:
                history += tokens
        tools = run.tools(request.tools)
        scale = scheme.scale
        breakdown = TokenBreakdown(
            system=_scaled(system, scale),
            tools=_scaled(tools, scale),
            history=_scaled(history, scale),
            last_user_message=_scaled(last, scale),
            other=scheme.reply_priming,
        )
        reasons = list(dict.fromkeys(run.reasons))
        if not scheme.exact:
            reasons.insert(0, scheme.method)
        return TokenCount(
            model=model,
            input_tokens=breakdown.total,
            approximate=bool(reasons),
            encoding=scheme.encoding,
            method=scheme.method,
            breakdown=breakdown,
            reasons=tuple(reasons),
        )


def _scaled(tokens: int, scale: Decimal) -> int:
    return tokens if scale == 1 else math.ceil(tokens * scale)


class _Run:
    """One counting pass; collects the reasons a count is not exact."""

    def __init__(self, encoding: tiktoken.Encoding, scheme: CountingScheme) -> None:
        self.encoding = encoding
        self.scheme = scheme
        self.reasons: list[str] = []

    def text(self, text: str) -> int:
        return len(self.encoding.encode_ordinary(text)) if text else 0

    def message(self, message: Message) -> int:
        scheme = self.scheme
        tokens = scheme.tokens_per_message + self.text(message.role)
        if message.name is not None:
            tokens += self.text(message.name) + scheme.tokens_per_name
        for part in message.parts:
            tokens += self.part(part)
        for call in message.tool_calls:
            self.reasons.append("tool calls in messages: no counting rule for them is published")
            tokens += self.text(call.name) + self.text(call.arguments) + _TOOL_CALL_OVERHEAD
        if message.role == "tool":
            self.reasons.append("tool results: no counting rule for them is published")
        return tokens

    def part(self, part: TextPart | ImagePart | ToolResultPart | OtherPart) -> int:
        if isinstance(part, TextPart):
            return self.text(part.text)
        if isinstance(part, ToolResultPart):
            self.reasons.append("tool results: no counting rule for them is published")
            return sum(self.part(p) for p in part.content) + _TOOL_CALL_OVERHEAD
        if isinstance(part, ImagePart):
            self.reasons.append("images: their token cost depends on their size, assumed 1024x1024")
            return _IMAGE_LOW_DETAIL if part.detail == "low" else _IMAGE_ASSUMED
        self.reasons.append(f"content of type {part.data.get('type')!r} is not counted")
        return 0

    def tools(self, tools: Sequence[Tool]) -> int:
        if not tools:
            return 0
        constants = self.scheme.tools
        if constants is None:
            return sum(self.text(json.dumps(_tool_json(t), separators=(",", ":"))) for t in tools)
        return sum(self.cookbook_tool(t, constants) for t in tools) + constants.func_end

    def cookbook_tool(self, tool: Tool, c: ToolConstants) -> int:
        """The cookbook's rule for a function definition (name, description, flat properties)."""
        tokens = c.func_init + self.text(f"{tool.name}:{_strip_dot(tool.description or '')}")
        properties = tool.parameters.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            return tokens
        tokens += c.prop_init
        for key, raw_spec in properties.items():
            tokens += c.prop_key
            spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
            if _is_nested(spec):
                self.reasons.append("nested tool parameters: the published rule covers flat properties only")
                tokens += self.text(json.dumps(spec, separators=(",", ":")))
            enum = spec.get("enum")
            if isinstance(enum, list):
                tokens += c.enum_init
                for item in enum:
                    tokens += c.enum_item + self.text(item if isinstance(item, str) else json.dumps(item))
            kind = spec.get("type", "")
            kind_text = kind if isinstance(kind, str) else json.dumps(kind)
            description = spec.get("description", "")
            tokens += self.text(f"{key}:{kind_text}:{_strip_dot(str(description))}")
        return tokens


def _strip_dot(text: str) -> str:
    return text[:-1] if text.endswith(".") else text


def _is_nested(spec: Mapping[str, Any]) -> bool:
    return any(k in spec for k in ("properties", "items", "anyOf", "oneOf", "allOf", "$ref"))


def _tool_json(tool: Tool) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description or "", "parameters": dict(tool.parameters)}
