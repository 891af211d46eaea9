"""What the gateway tells monitoring systems: Prometheus metrics (``metrics``) and OpenTelemetry
spans (``otel``), both made from the ledger records the writer is handed (``JournalWriter.tap``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.core.ledger import LedgerRecord

if TYPE_CHECKING:
    from thrifty.config.gateway import GatewayConfig
    from thrifty.telemetry.metrics import Metrics
    from thrifty.telemetry.otel import SpanExporter

__all__ = ["Telemetry"]


@dataclass
class Telemetry:
    metrics: Metrics | None = None
    spans: SpanExporter | None = None

    @classmethod
    def for_gateway(cls, config: GatewayConfig) -> Telemetry:
        metrics = None
        if config.metrics.enabled:
            from thrifty.telemetry.metrics import Metrics

            metrics = Metrics(config.metrics)
        spans = None
        if config.otel is not None:
            from thrifty.telemetry.otel import SpanExporter

            spans = SpanExporter(config.otel, metrics)
        return cls(metrics, spans)

    def observe(self, record: LedgerRecord) -> None:
        if self.metrics is not None:
            self.metrics.observe(record)
        if self.spans is not None:
            self.spans.observe(record)

    def tap(self) -> Callable[[LedgerRecord], None] | None:
        """What the ledger writer calls for each record (None: nothing to observe)."""
        if self.metrics is not None and self.spans is not None:
            return self.observe
        if self.metrics is not None:
            return self.metrics.observe  # one call less on the hot path
        if self.spans is not None:
            return self.spans.observe
        return None

    async def start(self) -> None:
        if self.spans is not None:
            await self.spans.start()

    async def stop(self) -> None:
        if self.spans is not None:
            await self.spans.stop()
