"""``GET /metrics``: the Prometheus text exposition (``thrifty.telemetry.metrics``), with the
budgets' spend and limits read from the shared budget store for this scrape; and what a call's
OpenTelemetry span needs from the request (``trace_call``, ``traced_answer``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.gateway.catalog import unknown_route
from thrifty.gateway.intake import Rejection
from thrifty.telemetry.context import TRACEPARENT_DETAIL, parse_traceparent
from thrifty.web.asgi import Scope, Send, header, send_response

if TYPE_CHECKING:
    from thrifty.gateway.runtime import Runtime
    from thrifty.pipeline.call import Call, Result
    from thrifty.telemetry.otel import SpanExporter

__all__ = ["handle_metrics", "trace_call", "traced_answer"]

log = logging.getLogger("thrifty.gateway")


async def handle_metrics(runtime: Runtime, method: str, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    from thrifty.telemetry.metrics import CONTENT_TYPE, budget_families  # prometheus_client: on first scrape

    metrics = runtime.telemetry.metrics
    if metrics is None:  # metrics.enabled: false
        raise unknown_route(method, "/metrics")
    if method not in ("GET", "HEAD"):
        raise Rejection(405, "/metrics takes GET")
    extra: list[Any] = []
    limits = runtime.limits
    if limits is not None and runtime.started:
        engine = limits.engine
        budgets = [*engine.budgets, *engine.plan_budgets()]
        if budgets:
            from thrifty.pipeline.budgets.status import budget_status

            try:
                extra = budget_families(await budget_status(engine.store, budgets), metrics.per_user)
            except Exception as error:  # the store is down: the counters are still worth a scrape
                log.warning("/metrics: budget gauges left out: %s", error)
    body = metrics.exposition(extra)
    await send_response(send, 200, body if method == "GET" else b"", headers, CONTENT_TYPE)


def trace_call(spans: SpanExporter, scope: Scope, call: Call, body: dict[str, Any]) -> None:
    """Before the pipeline runs: the caller's ``traceparent`` (when it is one) into the call's
    details, so the ledger row names the trace and its span is the caller's child; with
    ``export_content``, the prompt for the span."""
    raw = header(scope, b"traceparent")
    if raw is not None:
        value = raw.decode("latin-1")
        if parse_traceparent(value) is not None:
            call.details[TRACEPARENT_DETAIL] = value.strip().lower()
    if spans.export_content:
        spans.content(call.request_id, "input", body.get("messages", body.get("input")))


def traced_answer(spans: SpanExporter, call: Call, result: Result) -> None:
    """After it: a whole answer's text for the span (``export_content``; a stream's is not kept)."""
    if not spans.export_content or result.events is not None or result.status != 200 or not result.body:
        return
    try:
        answer = orjson.loads(result.body)
    except orjson.JSONDecodeError:
        return
    if isinstance(answer, dict) and isinstance(answer.get("choices"), list):  # OpenAI's shape
        messages = [choice.get("message") for choice in answer["choices"] if isinstance(choice, dict)]
    elif isinstance(answer, dict) and "content" in answer:  # Anthropic's
        messages = [{"role": answer.get("role", "assistant"), "content": answer["content"]}]
    else:
        return
    spans.content(call.request_id, "output", messages)
