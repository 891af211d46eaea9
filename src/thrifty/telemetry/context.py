"""W3C trace context: the caller's ``traceparent``, honoured so a call's span is the child of the
caller's span (no protobuf here: the gateway imports it whether spans are exported or not)."""

from __future__ import annotations

import re

__all__ = ["TRACEPARENT_DETAIL", "parse_traceparent"]

TRACEPARENT_DETAIL = "traceparent"
"""The ledger detail holding the caller's W3C ``traceparent`` (the gateway puts it there when
spans are exported), so the span is the child of the caller's and the ledger row names the trace."""

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(value: str) -> tuple[bytes, bytes] | None:
    """The trace id and parent span id of a W3C ``traceparent``; None when it is not one (then the
    call starts a trace of its own, as the recommendation says to treat an invalid header)."""
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group(1) == "ff":
        return None
    trace_id, span_id = bytes.fromhex(match.group(2)), bytes.fromhex(match.group(3))
    if not any(trace_id) or not any(span_id):
        return None
    return trace_id, span_id
