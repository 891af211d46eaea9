"""One OpenTelemetry span per ledger record, as OTLP protobuf (``opentelemetry-proto``), named and
attributed by the GenAI semantic conventions (github.com/open-telemetry/semantic-conventions-genai,
``gen_ai.client.inference``): ``gen_ai.operation.name``, ``gen_ai.provider.name`` (formerly
``gen_ai.system``), ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.*``
(``cache_read.input_tokens``, ``cache_write.input_tokens``, ``reasoning.output_tokens``), plus
``thrifty.*`` for cost, cache, route and savings.

Cost has no convention yet: the proposed ``gen_ai.usage.cost.*`` (input, cache_read, cache_write,
output, total) and ``gen_ai.usage.cost``, the total that Langfuse reads, both in USD as doubles;
``thrifty.cost_usd`` carries the exact decimal as a string.

Pure: records in, bytes out. The exporter (``otel``) calls it off the request path."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from thrifty.core.ledger import LedgerRecord
from thrifty.telemetry.context import TRACEPARENT_DETAIL, parse_traceparent

__all__ = ["encode_spans"]

_SCOPE = InstrumentationScope(name="thrifty", version="0.1.0")


def encode_spans(
    records: Sequence[LedgerRecord],
    service_name: str,
    content: Mapping[str, Mapping[str, Any]] | None = None,
) -> bytes:
    """An ``ExportTraceServiceRequest`` with one span per record. ``content``: prompts and answers
    by request id (``export_content``), put on the spans as ``gen_ai.input.messages`` and
    ``gen_ai.output.messages``."""
    spans = [_span(record, content.get(record.request_id or "") if content else None) for record in records]
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[_kv("service.name", service_name)]),
                scope_spans=[ScopeSpans(scope=_SCOPE, spans=spans)],
            )
        ]
    )
    body: bytes = request.SerializeToString()
    return body


def _span(record: LedgerRecord, content: Mapping[str, Any] | None) -> Span:
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
    return Span(
        trace_id=trace_id,
        span_id=random.getrandbits(64).to_bytes(8, "big"),
        parent_span_id=parent_id,
        name=f"{operation} {record.requested_model}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=list(_attributes(record, operation, details, content)),
        status=Status(code=Status.STATUS_CODE_UNSET)
        if ok
        else Status(code=Status.STATUS_CODE_ERROR, message=record.error or record.status),
    )


def _attributes(
    record: LedgerRecord, operation: str, details: Mapping[str, Any], content: Mapping[str, Any] | None
) -> Iterable[KeyValue]:
    usage = record.usage
    yield _kv("gen_ai.operation.name", operation)
    yield _kv("gen_ai.provider.name", record.provider or "unknown")
    yield _kv("gen_ai.request.model", record.requested_model)
    response_model = details.get("upstream_model") or record.served_model
    if response_model:
        yield _kv("gen_ai.response.model", str(response_model))
    yield _kv("gen_ai.request.stream", record.stream)
    yield _kv("gen_ai.usage.input_tokens", usage.input_tokens)
    yield _kv("gen_ai.usage.output_tokens", usage.output_tokens)
    if usage.cache_read_tokens:
        yield _kv("gen_ai.usage.cache_read.input_tokens", usage.cache_read_tokens)
    if usage.cache_write_tokens:
        yield _kv("gen_ai.usage.cache_write.input_tokens", usage.cache_write_tokens)
    if usage.reasoning_tokens:
        yield _kv("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)
    finish = details.get("finish_reason")
    if isinstance(finish, str):
        yield KeyValue(key="gen_ai.response.finish_reasons", value=_strings([finish]))
    if record.stream and record.ttft_ms is not None:
        yield _kv("gen_ai.response.time_to_first_chunk", record.ttft_ms / 1000)
    if record.status != "ok":
        yield _kv("error.type", str(record.http_status) if record.http_status else record.status)
    yield from _money_attributes(record)
    yield from _thrifty_attributes(record)
    if content:
        for key in ("input", "output"):
            messages = content.get(key)
            if messages is not None:
                yield _kv(f"gen_ai.{key}.messages", orjson.dumps(messages).decode())


def _money_attributes(record: LedgerRecord) -> Iterable[KeyValue]:
    cost = record.cost
    if cost is not None:
        yield _kv("gen_ai.usage.cost", float(cost.total))
        yield _kv("gen_ai.usage.cost.total", float(cost.total))
        yield _kv("gen_ai.usage.cost.input", float(cost.uncached_input))
        yield _kv("gen_ai.usage.cost.cache_read", float(cost.cache_read))
        yield _kv("gen_ai.usage.cost.cache_write", float(cost.cache_write))
        yield _kv("gen_ai.usage.cost.output", float(cost.output))
        yield _kv("thrifty.cost_usd", _money(cost.total))
    if record.counterfactual_cost is not None:
        yield _kv("thrifty.counterfactual_cost_usd", _money(record.counterfactual_cost))
    for strategy, saved in record.savings.items():
        yield _kv(f"thrifty.savings.{strategy}_usd", _money(saved))
    if record.savings:
        yield _kv("thrifty.savings_usd", _money(sum(record.savings.values(), Decimal(0))))


def _thrifty_attributes(record: LedgerRecord) -> Iterable[KeyValue]:
    yield _kv("thrifty.status", record.status)
    yield _kv("thrifty.record_id", record.id)
    if record.request_id:
        yield _kv("thrifty.request_id", record.request_id)
    if record.cache_status:
        yield _kv("thrifty.cache.status", record.cache_status)
    if record.route:
        yield _kv("thrifty.route", record.route)
    if record.served_model:
        yield _kv("thrifty.served_model", record.served_model)
    if record.http_status is not None:
        yield _kv("http.response.status_code", record.http_status)
    if record.user:
        yield _kv("user.id", record.user)  # also what Langfuse shows as the trace's user
    for name, value in (("team", record.team), ("feature", record.feature), ("key_id", record.key_id)):
        if value:
            yield _kv(f"thrifty.{name}", value)
    if record.tags:
        yield KeyValue(key="thrifty.tags", value=_strings(record.tags))


def _money(amount: Decimal) -> str:
    return format(amount.normalize(), "f") if amount else "0"


def _strings(values: Iterable[str]) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in values]))


def _kv(key: str, value: str | int | float | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))
