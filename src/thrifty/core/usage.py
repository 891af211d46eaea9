"""One usage type for every provider, converted from each wire shape exactly once.

The two big providers disagree on what "input tokens" means, and getting it wrong misprices every
cached call:

* OpenAI's ``prompt_tokens`` (Responses API: ``input_tokens``) already *includes*
  ``prompt_tokens_details.cached_tokens``; OpenAI has no cache-write charge.
* Anthropic's ``input_tokens`` *excludes* ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``; the creation tokens may be split by TTL in
  ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``.

Here ``input_tokens`` is always the total the model read, cache reads and writes included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.errors import UsageError

__all__ = ["Usage", "UsageError"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one call.

    ``input_tokens`` is the total input, including cache reads and both kinds of cache writes.
    ``output_tokens`` is the total output, including reasoning tokens.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{name} must be a whole number, got {value!r}")
            if value < 0:
                raise UsageError(f"{name} must not be negative, got {value}")
        cached = self.cache_read_tokens + self.cache_write_tokens
        if cached > self.input_tokens:
            raise UsageError(
                f"cache reads and writes ({cached}) exceed the total input tokens ({self.input_tokens}); "
                "input_tokens is the total input, cache reads and writes included"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise UsageError(f"reasoning_tokens ({self.reasoning_tokens}) exceed output_tokens ({self.output_tokens})")

    @property
    def cache_write_tokens(self) -> int:
        """All cache writes, whatever their TTL."""
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens billed at the plain input rate."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_5m_tokens=self.cache_write_5m_tokens + other.cache_write_5m_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_write_5m_tokens": self.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any]) -> Usage:
        """From an OpenAI ``usage`` object: Chat Completions or Responses API shape."""
        if "prompt_tokens" in usage or "completion_tokens" in usage:
            input_tokens = _count(usage, "prompt_tokens")
            output_tokens = _count(usage, "completion_tokens")
            in_details = _details(usage, "prompt_tokens_details")
            out_details = _details(usage, "completion_tokens_details")
        else:
            input_tokens = _count(usage, "input_tokens")
            output_tokens = _count(usage, "output_tokens")
            in_details = _details(usage, "input_tokens_details")
            out_details = _details(usage, "output_tokens_details")
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=_count(in_details, "cached_tokens"),
            reasoning_tokens=_count(out_details, "reasoning_tokens"),
        )

    @classmethod
    def from_anthropic(cls, usage: Mapping[str, Any]) -> Usage:
        """From an Anthropic ``usage`` object (a whole message, or ``message_start`` merged with
        the last ``message_delta``)."""
        uncached = _count(usage, "input_tokens")
        read = _count(usage, "cache_read_input_tokens")
        created = _count(usage, "cache_creation_input_tokens")
        split = _details(usage, "cache_creation")
        write_1h = _count(split, "ephemeral_1h_input_tokens")
        write_5m = _count(split, "ephemeral_5m_input_tokens")
        if write_1h + write_5m != created:
            # No split given (or an inconsistent one): everything not known to be 1-hour is 5-minute,
            # the default TTL.
            write_5m = max(created - write_1h, 0)
            write_1h = created - write_5m
        return cls(
            input_tokens=uncached + read + created,
            output_tokens=_count(usage, "output_tokens"),
            cache_read_tokens=read,
            cache_write_5m_tokens=write_5m,
            cache_write_1h_tokens=write_1h,
        )


def _count(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"usage field {key!r} must be a whole number, got {value!r}")
    return value


def _details(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UsageError(f"usage field {key!r} must be an object, got {type(value).__name__}")
    return value
