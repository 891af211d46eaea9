"""OpenTelemetry spans over OTLP/HTTP: an OTLP receiver (aiohttp, decoding each
``ExportTraceServiceRequest``) started here gets one span per call, named and attributed by the
GenAI semantic conventions, with the call's exact cost and the caller's ``traceparent`` as parent;
prompts only with ``export_content``; an unreachable collector fails no request and its dropped
spans are counted on ``/metrics``."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import running_gateway

HELLO = [{"role": "user", "content": "Say hello to the collector."}]
PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


class OtlpReceiver:
    """An OTLP/HTTP trace endpoint on loopback, in a thread: the spans it got, and the headers."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    async def _traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(await request.read())
        with self._lock:
            self.headers.append(dict(request.headers))
            for resource_spans in message.resource_spans:
                self.resources.append({kv.key: _value(kv.value) for kv in resource_spans.resource.attributes})
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> OtlpReceiver:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self, count: int, deadline_s: float = 30.0) -> list[Span]:
        """The spans once ``count`` have come (fails at the deadline), then a moment more so that
        a span too many would be seen too."""
        _until(f"{count} spans", lambda: len(self.spans) >= count, deadline_s)
        time.sleep(0.3)
        with self._lock:
            return list(self.spans)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(span: Span) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in span.attributes}


def _until(what: str, check: Callable[[], bool], deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {deadline_s:g} s")
        time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver().start()
    yield running
    running.stop()


def _client(url: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, default_headers=headers)


def test_one_span_per_call_with_the_genai_attributes_cost_and_the_callers_parent(
    simulator_url: str, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    otel = {"endpoint": receiver.url, "headers": {"authorization": "Basic cGs6c2s="}, "flush_interval_s": 0.05}
    with running_gateway(simulator_url, tmp_path, otel=otel) as gateway:
        traced = _client(gateway.url, traceparent=f"00-{PARENT_TRACE}-{PARENT_SPAN}-01", **{"x-thrifty-team": "search"})
        traced.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=30)
        plain = _client(gateway.url, **{"x-thrifty-user": "ada"})
        plain.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)
        list(
            plain.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, max_tokens=20, stream=True, stream_options={"include_usage": True}
            )
        )
        records = gateway.records(3)
        spans = receiver.received(3)
        metrics = httpx2.get(f"{gateway.url}/metrics").text

    assert len(records) == 3
    assert len(spans) == 3
    by_record = {_attributes(span)["thrifty.record_id"]: span for span in spans}
    assert set(by_record) == {record.id for record in records}
    for record in records:
        span = by_record[record.id]
        attributes = _attributes(span)
        assert span.name == f"chat {record.requested_model}"
        assert span.kind == Span.SPAN_KIND_CLIENT
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.request.model"] == record.requested_model
        assert attributes["gen_ai.response.model"] == record.details["upstream_model"]
        assert attributes["gen_ai.usage.input_tokens"] == record.usage.input_tokens
        assert attributes["gen_ai.usage.output_tokens"] == record.usage.output_tokens
        assert attributes["gen_ai.request.stream"] is record.stream
        assert record.cost is not None and record.cost.total > 0
        assert Decimal(attributes["thrifty.cost_usd"]) == record.cost.total
        assert attributes["gen_ai.usage.cost"] == float(record.cost.total)
        assert attributes["gen_ai.usage.cost.output"] == float(record.cost.output)
        assert attributes["thrifty.cache.status"] == record.cache_status
        assert attributes["thrifty.request_id"] == record.request_id
        assert span.end_time_unix_nano > span.start_time_unix_nano
        assert not any(key.startswith(("gen_ai.input", "gen_ai.output")) for key in attributes)  # no content

    first = by_record[next(r.id for r in records if r.team == "search")]
    assert first.trace_id.hex() == PARENT_TRACE
    assert first.parent_span_id.hex() == PARENT_SPAN
    assert _attributes(first)["thrifty.team"] == "search"
    others = [span for span in spans if span is not first]
    assert all(span.parent_span_id == b"" and span.trace_id.hex() != PARENT_TRACE for span in others)
    assert {_attributes(span).get("user.id") for span in others} == {"ada"}
    streamed = next(span for span in others if _attributes(span)["gen_ai.request.stream"])
    assert "gen_ai.response.time_to_first_chunk" in _attributes(streamed)

    assert all(h.get("Authorization") == "Basic cGs6c2s=" for h in receiver.headers)
    assert receiver.resources[0]["service.name"] == "thrifty"
    exported = _metric(metrics, "thrifty_otel_exported_spans_total")
    assert exported == 3


def test_prompts_and_answers_only_with_export_content(
    simulator_url: str, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    otel = {"endpoint": receiver.url, "flush_interval_s": 0.05, "export_content": True}
    with running_gateway(simulator_url, tmp_path, otel=otel) as gateway:
        completion = _client(gateway.url).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)
        (span,) = receiver.received(1)
    attributes = _attributes(span)
    assert "Say hello to the collector." in attributes["gen_ai.input.messages"]
    answer = completion.choices[0].message.content
    assert answer and answer in attributes["gen_ai.output.messages"]


def test_an_unreachable_collector_fails_no_request_and_its_drops_are_counted(
    simulator_url: str, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    otel = {"endpoint": dead, "flush_interval_s": 0.05, "max_attempts": 2, "queue_size": 2, "batch_size": 1}
    calls = 6
    with running_gateway(simulator_url, tmp_path, otel=otel) as gateway:
        client = _client(gateway.url)
        for _ in range(calls):
            completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
            assert completion.choices[0].message.content
        assert len(gateway.records(calls)) == calls

        def all_dropped() -> bool:
            return _metric(httpx2.get(f"{gateway.url}/metrics").text, "thrifty_otel_dropped_spans_total") == calls

        _until("every span counted as dropped", all_dropped)
        text = httpx2.get(f"{gateway.url}/metrics").text
    assert _metric(text, "thrifty_otel_exported_spans_total") == 0
    assert _metric(text, "thrifty_otel_dropped_spans_total", reason="export_failed") >= 1


def _metric(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_the_hand_written_encoding_decodes_with_the_official_schema() -> None:
    from datetime import UTC, datetime

    from thrifty.core.ledger import LedgerRecord
    from thrifty.core.pricing import Cost
    from thrifty.core.usage import Usage
    from thrifty.telemetry.spans import encode_spans

    route = "rules: small -> gpt-4o-mini (" + "a long reason " * 30 + ")"  # lengths past one varint byte
    record = LedgerRecord(
        requested_model="gpt-4o",
        ts=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        request_id="req-1",
        provider="openai",
        served_model="gpt-4o-mini",
        usage=Usage(input_tokens=3000, cache_read_tokens=1024, cache_write_5m_tokens=256, output_tokens=200),
        cost=Cost(uncached_input=Decimal("0.001"), cache_read=Decimal("0.0002"), output=Decimal("0.0003")),
        counterfactual_cost=Decimal("0.01"),
        savings={"routing": Decimal("0.0085")},
        latency_ms=1500.25,
        status="upstream_error",
        error="gpt-4o-mini: upstream answered 500",
        http_status=500,
        route=route,
        tags=("beta", "eu"),
        details={"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"},
    )
    content = {"req-1": {"input": [{"role": "user", "content": "é" * 200}]}}
    decoded = ExportTraceServiceRequest.FromString(encode_spans([record, record], "svc", content, {}))
    (resource_spans,) = decoded.resource_spans
    assert resource_spans.resource.attributes[0].value.string_value == "svc"
    assert resource_spans.scope_spans[0].scope.name == "thrifty"
    first, second = resource_spans.scope_spans[0].spans
    attributes = _attributes(first)
    assert first.trace_id.hex() == PARENT_TRACE and first.parent_span_id.hex() == PARENT_SPAN
    assert first.span_id != second.span_id
    assert first.start_time_unix_nano == 1767323045678901000
    assert first.end_time_unix_nano - first.start_time_unix_nano == 1_500_250_000
    assert first.status.code == first.status.STATUS_CODE_ERROR and "500" in first.status.message
    assert attributes["error.type"] == "500"
    assert attributes["thrifty.route"] == route
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert attributes["gen_ai.usage.cache_write.input_tokens"] == 256
    assert attributes["gen_ai.usage.input_tokens"] == 3000
    assert attributes["gen_ai.usage.cost.cache_read"] == 0.0002
    assert attributes["thrifty.savings.routing_usd"] == "0.0085"
    assert attributes["thrifty.counterfactual_cost_usd"] == "0.01"
    assert attributes["thrifty.tags"] == ["beta", "eu"]
    assert attributes["gen_ai.input.messages"] == '[{"role":"user","content":"' + "é" * 200 + '"}]'
    assert _attributes(second)["gen_ai.input.messages"] == attributes["gen_ai.input.messages"]  # the same request
