"""One OpenTelemetry span per ledger record, as OTLP protobuf, named and
attributed by the GenAI semantic conventions (github.com/open-telemetry/semantic-conventions-genai,
``gen_ai.client.inference``): ``gen_ai.operation.name``, ``gen_ai.provider.name`` (formerly
``gen_ai.system``), ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.*``
(``cache_read.input_tokens``, ``cache_write.input_tokens``, ``reasoning.output_tokens``), plus
``thrifty.*`` for cost, cache, route and savings.

Cost has no convention yet: the proposed ``gen_ai.usage.cost.*`` (input, cache_read, cache_write,
output, total) and ``gen_ai.usage.cost``, the total that Langfuse reads, both in USD as doubles;
``thrifty.cost_usd`` carries the exact decimal as a string.

Pure: records in, bytes out. The exporter (``otel``) calls it off the request path, but on the
gateway's event loop, so it is cheap: the protobuf wire format is written here directly (tags,
varints, length prefixes: a repeated field is its elements' encodings one after another) and the
attributes that repeat from call to call (models, provider, status, team, ...) are encoded once
(``memo``). Measured per span: 44 us building ``opentelemetry-proto`` message objects, 14 us this
way. The tests decode what it writes with ``opentelemetry-proto``'s
``ExportTraceServiceRequest``: the official schema is the check."""

from __future__ import annotations

import functools
import hashlib
import random
import struct
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from thrifty.core.ledger import LedgerRecord
from thrifty.telemetry.context import TRACEPARENT_DETAIL, parse_traceparent

__all__ = ["encode_spans"]

_SCOPE = b"\x0a\x07thrifty\x12\x050.1.0"  # InstrumentationScope{name: thrifty, version: 0.1.0}
_CLIENT = 3  # Span.SPAN_KIND_CLIENT
_ERROR = 2  # Status.STATUS_CODE_ERROR
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")
_MEMO_SIZE = 4096


def encode_spans(
    records: Sequence[LedgerRecord],
    service_name: str,
    content: Mapping[str, Mapping[str, Any]] | None = None,
    memo: dict[tuple[Any, ...], bytes] | None = None,
) -> bytes:
    """An ``ExportTraceServiceRequest`` with one span per record. ``content``: prompts and answers
    by request id (``export_content``), put on the spans as ``gen_ai.input.messages`` and
    ``gen_ai.output.messages``. ``memo``: the caller's cache of encoded attributes that repeat
    (models, provider, status, team, ...), kept from batch to batch (bounded)."""
    memo = {} if memo is None else memo
    spans = b"".join(_field(2, _span(r, content.get(r.request_id or "") if content else None, memo)) for r in records)
    name = service_name.encode()
    resource = _field(1, _key("service.name") + _field(2, _field(1, name)))  # Resource.attributes[0]
    scope_spans = _field(1, _SCOPE) + spans
    resource_spans = _field(1, resource) + _field(2, scope_spans)
    return _field(1, resource_spans)  # ExportTraceServiceRequest.resource_spans


def _span(record: LedgerRecord, content: Mapping[str, Any] | None, memo: dict[tuple[Any, ...], bytes]) -> bytes:
    details = record.details or {}
    parent = details.get(TRACEPARENT_DETAIL)
    context = parse_traceparent(parent) if isinstance(parent, str) else None
    if context is not None:
        trace_id, parent_id = context
    else:  # the rows of one request (an escalation, a lost attempt, a classifier) share a trace
        seed = (record.request_id or record.id).encode()
        trace_id, parent_id = hashlib.blake2b(seed, digest_size=16).digest(), b""
    start = int(record.ts.timestamp() * 1_000_000) * 1000
    end = start + int((record.latency_ms or 0.0) * 1_000_000)
    operation = "embeddings" if details.get("endpoint") == "embeddings" else "chat"
    ok = record.status == "ok"
    status = b"" if ok else _field(15, _field(2, (record.error or record.status).encode()) + b"\x18" + _varint(_ERROR))
    return b"".join(
        (
            _field(1, trace_id),
            _field(2, random.getrandbits(64).to_bytes(8, "big")),
            _field(4, parent_id) if parent_id else b"",
            _field(5, f"{operation} {record.requested_model}".encode()),
            b"\x30" + _varint(_CLIENT),  # kind
            b"\x39" + _FIXED64.pack(start),  # start_time_unix_nano
            b"\x41" + _FIXED64.pack(end),  # end_time_unix_nano
            *_attributes(record, operation, details, content, memo),
            status,
        )
    )


def _attributes(
    record: LedgerRecord,
    operation: str,
    details: Mapping[str, Any],
    content: Mapping[str, Any] | None,
    memo: dict[tuple[Any, ...], bytes],
) -> Iterable[bytes]:
    finish = details.get("finish_reason")
    shape = (
        operation,
        record.provider,
        record.requested_model,
        details.get("upstream_model") or record.served_model,
        record.served_model,
        record.stream,
        finish if isinstance(finish, str) else None,
        record.status,
        record.http_status,
        record.cache_status,
        record.team,
        record.feature,
        record.key_id,
        record.user,
    )
    encoded = memo.get(shape)
    if encoded is None:  # the names and labels repeat from call to call: encoded once each
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        encoded = memo[shape] = b"".join(_shape_attributes(*shape))
    yield encoded
    usage = record.usage
    yield _kv("gen_ai.usage.input_tokens", usage.input_tokens)
    yield _kv("gen_ai.usage.output_tokens", usage.output_tokens)
    if usage.cache_read_tokens:
        yield _kv("gen_ai.usage.cache_read.input_tokens", usage.cache_read_tokens)
    if usage.cache_write_tokens:
        yield _kv("gen_ai.usage.cache_write.input_tokens", usage.cache_write_tokens)
    if usage.reasoning_tokens:
        yield _kv("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)
    if record.stream and record.ttft_ms is not None:
        yield _kv("gen_ai.response.time_to_first_chunk", record.ttft_ms / 1000)
    yield from _money_attributes(record)
    yield _kv("thrifty.record_id", record.id)
    if record.request_id:
        yield _kv("thrifty.request_id", record.request_id)
    if record.route:
        yield _kv("thrifty.route", record.route)
    if record.tags:
        yield _attribute("thrifty.tags", _strings(record.tags))
    if content:
        for key in ("input", "output"):
            messages = content.get(key)
            if messages is not None:
                yield _kv(f"gen_ai.{key}.messages", orjson.dumps(messages).decode())


def _shape_attributes(
    operation: str,
    provider: str | None,
    requested_model: str,
    response_model: str | None,
    served_model: str | None,
    stream: bool,
    finish: str | None,
    status: str,
    http_status: int | None,
    cache_status: str | None,
    team: str | None,
    feature: str | None,
    key_id: str | None,
    user: str | None,
) -> Iterable[bytes]:
    yield _kv("gen_ai.operation.name", operation)
    yield _kv("gen_ai.provider.name", provider or "unknown")
    yield _kv("gen_ai.request.model", requested_model)
    if response_model:
        yield _kv("gen_ai.response.model", str(response_model))
    yield _kv("gen_ai.request.stream", stream)
    if finish is not None:
        yield _attribute("gen_ai.response.finish_reasons", _strings([finish]))
    if status != "ok":
        yield _kv("error.type", str(http_status) if http_status else status)
    yield _kv("thrifty.status", status)
    if cache_status:
        yield _kv("thrifty.cache.status", cache_status)
    if served_model:
        yield _kv("thrifty.served_model", served_model)
    if http_status is not None:
        yield _kv("http.response.status_code", http_status)
    if user:
        yield _kv("user.id", user)  # also what Langfuse shows as the trace's user
    for name, value in (("team", team), ("feature", feature), ("key_id", key_id)):
        if value:
            yield _kv(f"thrifty.{name}", value)


def _money_attributes(record: LedgerRecord) -> Iterable[bytes]:
    cost = record.cost
    if cost is not None:
        total = float(cost.total)
        yield _kv("gen_ai.usage.cost", total)
        yield _kv("gen_ai.usage.cost.total", total)
        yield _kv("gen_ai.usage.cost.input", float(cost.uncached_input))
        if cost.cache_read:
            yield _kv("gen_ai.usage.cost.cache_read", float(cost.cache_read))
        if cost.cache_write:
            yield _kv("gen_ai.usage.cost.cache_write", float(cost.cache_write))
        yield _kv("gen_ai.usage.cost.output", float(cost.output))
        yield _kv("thrifty.cost_usd", _money(cost.total))
    if record.counterfactual_cost is not None:
        yield _kv("thrifty.counterfactual_cost_usd", _money(record.counterfactual_cost))
    for strategy, saved in record.savings.items():
        yield _kv(f"thrifty.savings.{strategy}_usd", _money(saved))
    if record.savings:
        yield _kv("thrifty.savings_usd", _money(sum(record.savings.values(), Decimal(0))))


def _money(amount: Decimal) -> str:
    return format(amount.normalize(), "f") if amount else "0"


def _strings(values: Iterable[str]) -> bytes:
    """An AnyValue holding an ArrayValue of strings."""
    return _field(5, b"".join(_field(1, _field(1, v.encode())) for v in values))


def _kv(key: str, value: str | int | float | bool) -> bytes:
    """A span's attribute (``Span.attributes``, field 9): a KeyValue of the key and an AnyValue of
    the value's type."""
    if isinstance(value, str):
        raw = value.encode()
        size = len(raw)
        any_value = (b"\x0a" + bytes((size,)) if size < 0x80 else b"\x0a" + _varint(size)) + raw
    elif isinstance(value, bool):
        any_value = b"\x10\x01" if value else b"\x10\x00"
    elif isinstance(value, int):
        any_value = b"\x18" + _varint(value)
    else:
        any_value = b"\x21" + _DOUBLE.pack(value)
    return _attribute(key, any_value)


def _attribute(key: str, any_value: bytes) -> bytes:
    pair = _key(key) + b"\x12" + _length(any_value) + any_value
    return b"\x4a" + _length(pair) + pair


@functools.lru_cache(maxsize=512)
def _key(key: str) -> bytes:
    """KeyValue.key, encoded once per name (the names are few)."""
    return _field(1, key.encode())


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a string, bytes or a message)."""
    return _varint(number << 3 | 2) + _length(payload) + payload


def _length(payload: bytes) -> bytes:
    size = len(payload)
    return bytes((size,)) if size < 0x80 else _varint(size)


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64: two's complement, ten bytes
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
