"""``GET /metrics``: the Prometheus text exposition (``thrifty.telemetry.metrics``), with the
budgets' spend and limits read from the shared budget store for this scrape."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from thrifty.gateway.catalog import unknown_route
from thrifty.gateway.intake import Rejection
from thrifty.telemetry.metrics import CONTENT_TYPE, budget_families
from thrifty.web.asgi import Send, send_response

if TYPE_CHECKING:
    from thrifty.gateway.runtime import Runtime

__all__ = ["handle_metrics"]

log = logging.getLogger("thrifty.gateway")


async def handle_metrics(runtime: Runtime, method: str, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
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
