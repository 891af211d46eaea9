"""Reading traffic: ``thrifty capture export``'s lines, or a sample file's (a chat body a line,
with optional ``session_id``, ``feature``, ``user``, ``team``, ``tags``, ``call``, ``api``, ``ts``,
``output_tokens`` and ``usage`` beside the body's own fields, or the body under ``body``).

A line that is not a valid request is reported with its number and skipped (``strict``: the first
one is fatal); nothing is dropped silently."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from thrifty.core.capture import CapturedCall, Outcome, usage_from_json
from thrifty.core.messages import RequestError
from thrifty.errors import ThriftyError, UsageError
from thrifty.wire.formats import FORMATS, wire_format

__all__ = ["BadLine", "Traffic", "TrafficError", "TrafficItem", "parse_line", "read_traffic"]

_SAMPLE_KEYS = frozenset(
    {"session_id", "session", "feature", "user", "team", "tags", "call", "api", "ts", "output_tokens", "usage"}
)
"""A sample line's own keys, beside the chat body's (taken out of the body before it is parsed)."""


class TrafficError(ThriftyError, ValueError):
    """A traffic line that is not a valid request (with ``--strict``: fatal)."""


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    message: str

    def text(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class TrafficItem:
    line: int
    call: CapturedCall
    model: str
    """The model asked for (after ``--model-map``)."""
    stream: bool


@dataclass
class Traffic:
    source: str
    items: list[TrafficItem] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


def read_traffic(
    lines: Iterable[str | bytes],
    source: str,
    *,
    strict: bool = False,
    model_map: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Traffic:
    """Every line of ``lines`` (blank ones skipped), in order. ``now``: the time of a sample line
    without a ``ts`` (default: the time of reading)."""
    traffic = Traffic(source)
    when = now or datetime.now(UTC)
    for number, raw in enumerate(lines, 1):
        text = raw.strip() if isinstance(raw, str) else raw.strip().decode("utf-8", "replace")
        if not text:
            continue
        try:
            traffic.items.append(parse_line(text, number, when, model_map or {}))
        except TrafficError as error:
            if strict:
                raise TrafficError(f"{source}: line {number}: {error}") from None
            traffic.bad.append(BadLine(number, str(error)))
    return traffic


def parse_line(text: str, number: int, now: datetime, model_map: Mapping[str, str]) -> TrafficItem:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise TrafficError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise TrafficError("expected a JSON object (a chat request, or a capture)")
    try:
        captured = _captured(data, now)
    except (ValueError, TypeError, UsageError) as error:
        raise TrafficError(str(error)) from None
    if captured.api not in FORMATS:
        raise TrafficError(f"api: {captured.api!r} is not one of {', '.join(FORMATS)}")
    body = captured.body
    model = body.get("model")
    if isinstance(model, str) and model in model_map:
        body = {**body, "model": model_map[model]}
        captured = _with_body(captured, body)
    try:
        request = wire_format(captured.api).parse_request(body)
    except RequestError as error:
        raise TrafficError(f"not a valid {captured.api} request: {error}") from None
    return TrafficItem(number, captured, request.model, request.stream)


def _captured(data: dict[str, Any], now: datetime) -> CapturedCall:
    if "capture" in data:
        return _capture_line(data)
    if isinstance(data.get("body"), dict):
        meta, body = data, dict(data["body"])
    else:
        meta = data
        body = {k: v for k, v in data.items() if k not in _SAMPLE_KEYS}
    usage = usage_from_json(meta.get("usage"))
    output = meta.get("output_tokens")
    if output is not None and (isinstance(output, bool) or not isinstance(output, int) or output < 0):
        raise ValueError("output_tokens: expected a whole number >= 0")
    session = meta.get("session_id", meta.get("session"))
    return CapturedCall(
        ts=_ts(meta.get("ts"), now),
        api=_str(meta, "api") or "openai",
        body=body,
        user=_str(meta, "user"),
        team=_str(meta, "team"),
        feature=_str(meta, "feature"),
        tags=_tags(meta.get("tags")),
        outcome=None
        if usage is None
        else Outcome(status="ok", http_status=200, served_model=_model(body), usage=usage),
        session=None if session is None else str(session),
        label=_str(meta, "call"),
        output_tokens=output,
    )


def _capture_line(data: dict[str, Any]) -> CapturedCall:
    if data.get("capture") != 1:
        raise ValueError(f"capture: version {data.get('capture')!r} is not one this thrifty reads (1)")
    body = data.get("body")
    if not isinstance(body, dict):
        raise ValueError("body: expected the request object")
    who = data.get("attribution") or {}
    directives = data.get("directives") or {}
    if not isinstance(who, dict) or not isinstance(directives, dict):
        raise ValueError("attribution and directives: expected objects")
    hints = directives.get("hints") or {}
    if not isinstance(hints, dict):
        raise ValueError("directives.hints: expected an object")
    outcome = data.get("outcome")
    if outcome is not None and not isinstance(outcome, dict):
        raise ValueError("outcome: expected an object")
    session = data.get("session_id")
    return CapturedCall(
        ts=_ts(data.get("ts"), None),
        api=_str(data, "api") or "openai",
        body=body,
        user=_str(who, "user"),
        team=_str(who, "team"),
        feature=_str(who, "feature"),
        key_id=_str(who, "key_id"),
        tags=_tags(who.get("tags")),
        cache_directive=_str(directives, "cache"),
        cache_version=_str(directives, "cache_version"),
        urgent=bool(directives.get("urgent")),
        hints={str(k): str(v) for k, v in hints.items()},
        include_usage=bool(directives.get("include_usage")),
        outcome=None if outcome is None else Outcome.from_json(outcome),
        id=_str(data, "id"),
        session=None if session is None else str(session),
        label=_str(data, "call"),
    )


def _with_body(call: CapturedCall, body: dict[str, Any]) -> CapturedCall:
    from dataclasses import replace

    return replace(call, body=body)


def _model(body: Mapping[str, Any]) -> str | None:
    model = body.get("model")
    return model if isinstance(model, str) else None


def _ts(raw: Any, now: datetime | None) -> datetime:
    if raw is None:
        if now is None:
            raise ValueError("ts: missing")
        return now
    if not isinstance(raw, str):
        raise ValueError("ts: expected an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"ts: {raw!r} is not an ISO 8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string")
    return value


def _tags(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise ValueError("tags: expected a list of strings")
    return tuple(raw)
