"""The usage of one line of ``thrifty price --usage-file``: thrifty's own field names, or the
``usage`` object as OpenAI or Anthropic return it (at the top level or under ``usage``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.core.usage import Usage

__all__ = ["LINE_FIELDS", "usage_of_line"]

LINE_FIELDS = frozenset({"model", "provider", "batch", "at", "usage"})
"""What a line may carry besides its usage."""

_OWN = frozenset(
    {
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "output_tokens",
        "reasoning_tokens",
    }
)
_OPENAI_CHAT = frozenset(
    {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details"}
)
_OPENAI_RESPONSES = frozenset(
    {"input_tokens", "output_tokens", "total_tokens", "input_tokens_details", "output_tokens_details"}
)
_ANTHROPIC = frozenset(
    {"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation"}
)
EXPECTED = (
    "thrifty's input_tokens (with cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, "
    "reasoning_tokens), OpenAI's prompt_tokens and completion_tokens (with prompt_tokens_details.cached_tokens, "
    "completion_tokens_details.reasoning_tokens), or Anthropic's input_tokens and output_tokens (with "
    "cache_read_input_tokens, cache_creation_input_tokens)"
)


def usage_of_line(data: Mapping[str, Any]) -> Usage:
    """The line's usage; ValueError (a ``UsageError`` for bad counts) naming what was wrong.
    Anthropic's ``input_tokens`` is the uncached input only, so a line with Anthropic's cache
    fields is read as Anthropic's; without them the two mean the same."""
    nested = data.get("usage")
    if nested is not None:
        if not isinstance(nested, Mapping):
            raise ValueError("'usage' must be an object")
        extra = set(data) - LINE_FIELDS
        if extra:
            raise ValueError(f"unknown field(s) {', '.join(sorted(extra))} beside 'usage'")
        fields: Mapping[str, Any] = nested
    else:
        fields = {k: v for k, v in data.items() if k not in LINE_FIELDS}
    keys = set(fields)
    if keys & {"prompt_tokens", "completion_tokens"}:
        _only(keys, _OPENAI_CHAT, "OpenAI")
        return Usage.from_openai(fields)
    if keys & {"cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation"}:
        _only(keys, _ANTHROPIC, "Anthropic")
        return Usage.from_anthropic(fields)
    if keys & {"input_tokens_details", "output_tokens_details", "total_tokens"}:
        _only(keys, _OPENAI_RESPONSES, "OpenAI")
        return Usage.from_openai(fields)
    if "input_tokens" not in keys:
        unknown = f" (found {', '.join(sorted(keys))})" if keys else ""
        raise ValueError(f"no usage fields{unknown}: expected {EXPECTED}")
    _only(keys, _OWN, "thrifty's")
    return Usage(
        input_tokens=_count(fields, "input_tokens"),
        output_tokens=_count(fields, "output_tokens"),
        cache_read_tokens=_count(fields, "cache_read_tokens"),
        cache_write_5m_tokens=_count(fields, "cache_write_tokens"),
        cache_write_1h_tokens=_count(fields, "cache_write_1h_tokens"),
        reasoning_tokens=_count(fields, "reasoning_tokens"),
    )


def _only(keys: set[str], allowed: frozenset[str], shape: str) -> None:
    unknown = keys - allowed
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))} in {shape} usage fields")


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'{key}' must be a whole number >= 0, got {value!r}")
    return value
