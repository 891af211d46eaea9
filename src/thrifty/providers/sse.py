"""Server-sent events: reading them from an upstream, writing them to a client."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import orjson

__all__ = ["SSEEvent", "encode_event", "read_events"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    """The ``event:`` field (Anthropic names every event; OpenAI names none)."""
    data: bytes
    """The ``data:`` lines, joined with newlines, as received."""


async def read_events(lines: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Events from a stream of lines (each ending in ``\\n``), per the SSE spec: fields until a
    blank line; ``:`` lines are comments; a final event without its blank line still counts."""
    event: str | None = None
    data: list[bytes] = []
    async for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield SSEEvent(event, b"\n".join(data))
            event, data = None, []
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if data:
        yield SSEEvent(event, b"\n".join(data))


def encode_event(data: bytes | object, event: str | None = None) -> bytes:
    """One SSE event; ``data`` is raw bytes or a JSON-able object."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"
