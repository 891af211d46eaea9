"""A captured call: the request as the client sent it (redacted), who it was for, the directives
it carried, and what came of it. The one shape of ``thrifty capture export``'s lines and of what
``thrifty replay`` and ``thrifty gate`` read (a sample file's lines are the same with most fields
left out: a bare chat body is a line too, see ``thrifty.replay.traffic``)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.core.usage import Usage

if TYPE_CHECKING:
    from thrifty.core.ledger import LedgerRecord

__all__ = [
    "CAPTURE_VERSION",
    "CapturedCall",
    "Outcome",
    "captured_from_record",
    "sent_fingerprint",
    "usage_from_json",
]

CAPTURE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of a recorded call, as the ledger has it."""

    status: str | None = None
    """The ledger's status (``ok``, ``error``, ``client_disconnected``, ...)."""
    http_status: int | None = None
    served_model: str | None = None
    upstream_model: str | None = None
    provider: str | None = None
    usage: Usage | None = None
    """What the provider billed (zero for a cache hit)."""
    cached_usage: Usage | None = None
    """A cache hit: the usage of the stored answer (what the call would have used)."""
    cost: Decimal | None = None
    cache_status: str | None = None
    route: str | None = None
    sent: str | None = None
    """A fingerprint of the request as it was sent upstream (after compression, caps, routing)."""
    response: str | None = None
    """The answer's text (``capture.keep_responses`` only)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "http_status": self.http_status,
            "served_model": self.served_model,
            "upstream_model": self.upstream_model,
            "provider": self.provider,
            "usage": None if self.usage is None else _usage_json(self.usage),
            "cost": None if self.cost is None else str(self.cost),
            "cache_status": self.cache_status,
            "route": self.route,
            "sent": self.sent,
        }
        if self.cached_usage is not None:
            out["cached_usage"] = _usage_json(self.cached_usage)
        if self.response is not None:
            out["response"] = self.response
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        """``ValueError`` (or ``TypeError``) when a field is not what it should be."""
        cost = data.get("cost")
        http = data.get("http_status")
        return cls(
            status=_text(data, "status"),
            http_status=None if http is None else int(http),
            served_model=_text(data, "served_model"),
            upstream_model=_text(data, "upstream_model"),
            provider=_text(data, "provider"),
            usage=usage_from_json(data.get("usage")),
            cached_usage=usage_from_json(data.get("cached_usage")),
            cost=None if cost is None else Decimal(str(cost)),
            cache_status=_text(data, "cache_status"),
            route=_text(data, "route"),
            sent=_text(data, "sent"),
            response=_text(data, "response"),
        )


@dataclass(frozen=True, slots=True)
class CapturedCall:
    ts: datetime
    api: str
    """The client API: ``openai`` (chat completions) or ``anthropic`` (messages)."""
    body: dict[str, Any]
    user: str | None = None
    team: str | None = None
    feature: str | None = None
    key_id: str | None = None
    tags: tuple[str, ...] = ()
    cache_directive: str | None = None
    cache_version: str | None = None
    urgent: bool = False
    hints: Mapping[str, str] = field(default_factory=dict)
    include_usage: bool = False
    outcome: Outcome | None = None
    id: str | None = None
    """The ledger row the capture came from."""
    session: str | None = None
    label: str | None = None
    """A sample's name for the call within its session (``thrifty gate`` reports by it)."""
    output_tokens: int | None = None
    """A sample's output assumption for this call, when it has no recorded usage."""

    def directives(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.cache_directive:
            out["cache"] = self.cache_directive
        if self.cache_version:
            out["cache_version"] = self.cache_version
        if self.urgent:
            out["urgent"] = True
        if self.hints:
            out["hints"] = dict(self.hints)
        if self.include_usage:
            out["include_usage"] = True
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "capture": CAPTURE_VERSION,
            "id": self.id,
            "ts": self.ts.isoformat(timespec="microseconds"),
            "api": self.api,
            "body": self.body,
            "attribution": {
                "user": self.user,
                "team": self.team,
                "feature": self.feature,
                "key_id": self.key_id,
                "tags": list(self.tags),
            },
        }
        directives = self.directives()
        if directives:
            out["directives"] = directives
        if self.session is not None:
            out["session_id"] = self.session
        if self.label is not None:
            out["call"] = self.label
        if self.output_tokens is not None:
            out["output_tokens"] = self.output_tokens
        if self.outcome is not None:
            out["outcome"] = self.outcome.to_json()
        return out


def sent_fingerprint(model: str, body: Mapping[str, Any]) -> str:
    """What was sent upstream, in 24 hex digits: a replay uses the recorded usage as it is only
    for a request sent the same (the same model, the same body after compression and caps)."""
    digest = hashlib.blake2b(model.encode() + b"\x00", digest_size=12)
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str))
    return digest.hexdigest()


def _usage_json(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_5m_tokens": usage.cache_write_5m_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def usage_from_json(raw: Any) -> Usage | None:
    """Thrifty's own usage shape (``Usage.as_dict``'s keys); None for None. ``ValueError`` else."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("usage: expected an object")
    write = int(raw.get("cache_write_tokens", 0) or 0)
    write_5m = int(raw.get("cache_write_5m_tokens", write) or 0)
    write_1h = int(raw.get("cache_write_1h_tokens", 0) or 0)
    if "cache_write_5m_tokens" in raw and write and write_5m + write_1h != write:
        raise ValueError("usage: cache_write_tokens is not cache_write_5m_tokens + cache_write_1h_tokens")
    return Usage(
        input_tokens=int(raw.get("input_tokens", 0) or 0),
        output_tokens=int(raw.get("output_tokens", 0) or 0),
        cache_read_tokens=int(raw.get("cache_read_tokens", 0) or 0),
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=int(raw.get("reasoning_tokens", 0) or 0),
    )


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string")
    return value


def captured_from_record(record: LedgerRecord) -> CapturedCall | None:
    """The capture a ledger row carries (``details.capture``), with the row's outcome; None for
    a row that was not captured. ``ValueError`` for a capture that is not one."""
    capture = record.details.get("capture")
    if not isinstance(capture, Mapping):
        return None
    body = capture.get("body")
    if not isinstance(body, dict):
        raise ValueError(f"ledger row {record.id}: details.capture.body is not a request")
    directives = capture.get("directives") or {}
    hints = directives.get("hints") or {}
    upstream = record.details.get("upstream_model")
    return CapturedCall(
        ts=record.ts,
        api=str(capture.get("api") or "openai"),
        body=body,
        user=record.user,
        team=record.team,
        feature=record.feature,
        key_id=record.key_id,
        tags=record.tags,
        cache_directive=directives.get("cache"),
        cache_version=directives.get("cache_version"),
        urgent=bool(directives.get("urgent")),
        hints={str(k): str(v) for k, v in hints.items()},
        include_usage=bool(directives.get("include_usage")),
        outcome=Outcome(
            status=record.status,
            http_status=record.http_status,
            served_model=record.served_model,
            upstream_model=upstream if isinstance(upstream, str) else None,
            provider=record.provider,
            usage=record.usage,
            cached_usage=usage_from_json(record.details.get("cached_usage")),
            cost=None if record.cost is None else record.cost.total,
            cache_status=record.cache_status,
            route=record.route,
            sent=capture.get("sent") if isinstance(capture.get("sent"), str) else None,
            response=capture.get("response") if isinstance(capture.get("response"), str) else None,
        ),
        id=record.id,
    )
