"""The wire formats a client may speak, each one module of ``thrifty.wire``, and the one table
that names them. Whatever the pipeline needs to know of a format (parse a request, render one for
a provider, read an answer's usage and text, add a stream up into an answer and replay an answer
as a stream, shape an error) it asks the format's ``WireFormat`` here, by the call's client API;
translation between two formats is ``wire.translate``. Adding a format is adding its module and
an entry in ``FORMATS``.

OpenAI's Responses API (``wire.openai_responses``) is a format of the edge: a face turns a
Responses request into its Chat Completions equivalent before the pipeline and the answer back
after it, so it needs no entry here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Protocol

from thrifty.core.messages import ChatRequest
from thrifty.core.usage import Usage
from thrifty.errors import error_body
from thrifty.wire.anthropic_messages import message_text, parse_anthropic_request, render_anthropic_request
from thrifty.wire.openai_chat import completion_text, parse_openai_request, render_openai_request
from thrifty.wire.stream_bodies import AnthropicAccumulator, OpenAIAccumulator, anthropic_events, openai_chunks

__all__ = ["ANTHROPIC_MESSAGES", "FORMATS", "OPENAI_CHAT", "StreamAccumulator", "WireFormat", "wire_format"]


class StreamAccumulator(Protocol):
    """A stream's events added up into the answer a non-streamed call would have returned."""

    def feed_event(self, event: str | None, data: Mapping[str, Any]) -> None: ...

    def result(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class WireFormat:
    name: str
    """The client API's name, as ``Call.client_api`` gives it."""
    parse_request: Callable[[object], ChatRequest]
    """A request body -> the normalised request (``RequestError`` with the field's path)."""
    render_request: Callable[[ChatRequest], dict[str, Any]]
    """The normalised request -> a body in this format."""
    usage: Callable[[Mapping[str, Any]], Usage]
    """An answer's ``usage`` object -> ``Usage`` (``UsageError`` when it is not one)."""
    answer_text: Callable[[Mapping[str, Any]], str]
    """What an answer generated, as text."""
    accumulator: Callable[[], StreamAccumulator]
    replay: Callable[[Mapping[str, Any], bool], Iterator[tuple[str | None, dict[str, Any]]]]
    """An answer replayed as the (event name, data) a stream of it carries; the flag: whether an
    OpenAI stream ends with its usage chunk."""
    stream_end: bytes
    """What follows a stream's last event (OpenAI's ``[DONE]``)."""
    error_body: Callable[[int, str, str, str | None], bytes]
    """(status, message, type, code) -> an error body the format's SDK reads."""


def _openai_replay(body: Mapping[str, Any], include_usage: bool) -> Iterator[tuple[str | None, dict[str, Any]]]:
    for chunk in openai_chunks(body, include_usage=include_usage):
        yield None, chunk


def _anthropic_replay(body: Mapping[str, Any], include_usage: bool) -> Iterator[tuple[str | None, dict[str, Any]]]:
    yield from anthropic_events(body)


OPENAI_CHAT: Final = WireFormat(
    name="openai",
    parse_request=parse_openai_request,
    render_request=render_openai_request,
    usage=Usage.from_openai,
    answer_text=completion_text,
    accumulator=OpenAIAccumulator,
    replay=_openai_replay,
    stream_end=b"data: [DONE]\n\n",
    error_body=functools.partial(error_body, "openai"),
)
ANTHROPIC_MESSAGES: Final = WireFormat(
    name="anthropic",
    parse_request=parse_anthropic_request,
    render_request=render_anthropic_request,
    usage=Usage.from_anthropic,
    answer_text=message_text,
    accumulator=AnthropicAccumulator,
    replay=_anthropic_replay,
    stream_end=b"",
    error_body=functools.partial(error_body, "anthropic"),
)

FORMATS: Final[Mapping[str, WireFormat]] = MappingProxyType({f.name: f for f in (OPENAI_CHAT, ANTHROPIC_MESSAGES)})


def wire_format(name: str) -> WireFormat:
    """The format ``name`` names (a ``Call.client_api``, a provider's ``wire``)."""
    found = FORMATS.get(name)
    if found is None:
        raise KeyError(f"unknown wire format {name!r}: expected one of {', '.join(FORMATS)}")
    return found
