"""Checks of a cheaper model's answer: a failed one sends the request a tier up.

An ``Answer`` is read from the response body in the client's format (OpenAI or Anthropic), or
from a stream's collected text. Each check returns the reason the answer fails, or None.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from thrifty.wire.openai_chat import first_choice

__all__ = [
    "BUILTIN_CHECKS",
    "Answer",
    "AnswerCheck",
    "ToolCallView",
    "answer_from_body",
    "answer_from_stream",
    "refusal_check",
    "run_checks",
    "schema_error",
]

_REFUSALS = (
    r"(?:i'?m|i am)\s+(?:very\s+|so\s+)?sorry,?\s+(?:but\s+)?"
    r"i\s+(?:can(?:'|no)?t|cannot|am\s+unable|'m\s+unable|won'?t)",
    r"i\s+(?:can(?:'|no)?t|cannot|am\s+unable\s+to|'m\s+unable\s+to|won'?t|will\s+not)\s+"
    r"(?:help|assist|comply|provide|answer|fulfil|fulfill|do\s+that|support|engage)",
    r"as\s+an\s+ai(?:\s+language\s+model)?,?\s+i\s+(?:can(?:'|no)?t|cannot|do\s+not|don'?t)",
    r"i\s+(?:must|have\s+to)\s+(?:decline|refuse)",
)
_REFUSAL_WINDOW = 300
"""Refusals open the answer: only its first characters are searched."""


@dataclass(frozen=True, slots=True)
class ToolCallView:
    name: str
    arguments: str
    """JSON text (Anthropic's ``input`` object is serialised)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A model's answer, as the checks see it."""

    text: str
    finish_reason: str | None
    """Normalised: ``stop``, ``length``, ``tool_calls``, ``refusal``, ``content_filter``, or as sent."""
    model: str | None = None
    refusal: str | None = None
    """OpenAI's ``message.refusal``."""
    tool_calls: tuple[ToolCallView, ...] = ()
    json_requested: bool = False
    json_schema: Mapping[str, Any] | None = None
    tools: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The request's tools: name -> JSON Schema of the arguments."""
    streamed: bool = False


AnswerCheck = Callable[[Answer], str | None]

_FINISH = {
    "max_tokens": "length",
    "length": "length",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "stop": "stop",
    "tool_use": "tool_calls",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "refusal": "refusal",
    "content_filter": "content_filter",
    "pause_turn": "stop",
}


def _finish(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    return _FINISH.get(raw, raw)


def answer_from_body(
    body: bytes,
    client_api: str,
    *,
    model: str | None = None,
    json_requested: bool = False,
    json_schema: Mapping[str, Any] | None = None,
    tools: Mapping[str, Mapping[str, Any]] | None = None,
) -> Answer | None:
    """The answer in a whole response body; None when the body is not a response."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    extra: dict[str, Any] = {
        "model": model,
        "json_requested": json_requested,
        "json_schema": json_schema,
        "tools": tools or {},
    }
    if client_api == "anthropic":
        texts: list[str] = []
        calls: list[ToolCallView] = []
        for block in data.get("content") or ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                texts.append(str(block.get("text", "")))
            elif block.get("type") == "tool_use":
                calls.append(ToolCallView(str(block.get("name", "")), orjson.dumps(block.get("input", {})).decode()))
        return Answer("".join(texts), _finish(data.get("stop_reason")), tool_calls=tuple(calls), **extra)
    choice = first_choice(data)
    if choice is None:
        return None
    message = choice.get("message") or {}
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    calls = []
    for call in message.get("tool_calls") or ():
        function = (call or {}).get("function") or {}
        calls.append(ToolCallView(str(function.get("name", "")), str(function.get("arguments", ""))))
    refusal = message.get("refusal")
    return Answer(
        text,
        _finish(choice.get("finish_reason")),
        refusal=refusal if isinstance(refusal, str) and refusal else None,
        tool_calls=tuple(calls),
        **extra,
    )


def answer_from_stream(
    text: str,
    finish_reason: str | None,
    *,
    model: str | None = None,
    json_requested: bool = False,
    json_schema: Mapping[str, Any] | None = None,
) -> Answer:
    """A streamed answer, from what the stream carried (tool calls are not separated out)."""
    return Answer(
        text,
        _finish(finish_reason),
        model=model,
        json_requested=json_requested,
        json_schema=json_schema,
        streamed=True,
    )


def check_empty(answer: Answer) -> str | None:
    if answer.tool_calls or answer.text.strip() or answer.refusal:
        return None
    return "empty answer"


def refusal_check(extra_patterns: Iterable[str] = ()) -> AnswerCheck:
    pattern = re.compile("|".join([*_REFUSALS, *(f"(?:{p})" for p in extra_patterns)]), re.IGNORECASE)

    def check_refusal(answer: Answer) -> str | None:
        if answer.refusal:
            return "refusal"
        if answer.finish_reason in ("refusal", "content_filter"):
            return f"finish_reason {answer.finish_reason}"
        if pattern.search(answer.text[:_REFUSAL_WINDOW]):
            return "refusal"
        return None

    return check_refusal


def check_json(answer: Answer) -> str | None:
    if not answer.json_requested or answer.tool_calls:
        return None
    try:
        value = json.loads(answer.text)
    except ValueError:
        return "invalid JSON"
    if answer.json_schema is not None:
        problem = schema_error(value, answer.json_schema)
        if problem is not None:
            return f"JSON does not match the schema: {problem}"
    return None


def check_length(answer: Answer) -> str | None:
    return "finish_reason length" if answer.finish_reason == "length" else None


def check_tool_schema(answer: Answer) -> str | None:
    for call in answer.tool_calls:
        schema = answer.tools.get(call.name)
        if schema is None:
            return f"tool call to unknown tool {call.name!r}"
        try:
            arguments = json.loads(call.arguments) if call.arguments else {}
        except ValueError:
            return f"tool call {call.name}: arguments are not JSON"
        if not isinstance(arguments, dict):
            return f"tool call {call.name}: arguments are not an object"
        problem = schema_error(arguments, schema)
        if problem is not None:
            return f"tool call {call.name}: {problem}"
    return None


BUILTIN_CHECKS: Mapping[str, AnswerCheck] = {
    "empty": check_empty,
    "refusal": refusal_check(),
    "invalid_json": check_json,
    "length": check_length,
    "tool_schema": check_tool_schema,
}


def run_checks(answer: Answer, checks: Sequence[AnswerCheck]) -> str | None:
    """The first failure's reason, or None. A check that raises fails the answer (with why)."""
    for check in checks:
        try:
            reason = check(answer)
        except Exception as error:
            return f"check {getattr(check, '__name__', 'check')} raised {type(error).__name__}: {error}"
        if reason:
            return str(reason)
    return None


# -- a small JSON Schema validator: the keywords tool and response schemas use ----------------

_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and math.isfinite(v) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_error(value: Any, schema: Any, path: str = "$") -> str | None:
    """Where ``value`` breaks ``schema`` (type, required, properties, additionalProperties, enum,
    const, items, min/max, anyOf/oneOf/allOf), or None. Unknown keywords are ignored: the check
    errs on the side of accepting an answer."""
    if not isinstance(schema, Mapping):
        return None
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        known = [k for k in kinds if isinstance(k, str) and k in _TYPES]
        if known and not any(_TYPES[k](value) for k in known):
            return f"{path}: expected {' or '.join(known)}"
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        return f"{path}: not one of the allowed values"
    if "const" in schema and value != schema["const"]:
        return f"{path}: not the required value"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options and all(schema_error(value, o, path) for o in options):
            return f"{path}: matches none of the {key} options"
    for option in schema.get("allOf") or ():
        problem = schema_error(value, option, path)
        if problem:
            return problem
    if isinstance(value, dict):
        return _object_error(value, schema, path)
    if isinstance(value, list):
        return _array_error(value, schema, path)
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int | float) and value < low:
            return f"{path}: below the minimum {low}"
        if isinstance(high, int | float) and value > high:
            return f"{path}: above the maximum {high}"
    return None


def _object_error(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> str | None:
    for name in schema.get("required") or ():
        if name not in value:
            return f"{path}: missing required property {name!r}"
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    for name, item in value.items():
        if name in properties:
            problem = schema_error(item, properties[name], f"{path}.{name}")
            if problem:
                return problem
        elif schema.get("additionalProperties") is False:
            return f"{path}: unexpected property {name!r}"
    return None


def _array_error(value: list[Any], schema: Mapping[str, Any], path: str) -> str | None:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and len(value) < low:
        return f"{path}: fewer than {low} items"
    if isinstance(high, int) and len(value) > high:
        return f"{path}: more than {high} items"
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            problem = schema_error(item, items, f"{path}[{index}]")
            if problem:
                return problem
    return None
