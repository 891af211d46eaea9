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

__all__ = ["Telemetry"]


@dataclass
class Telemetry:
    metrics: Metrics | None = None
    spans: None = None  # OpenTelemetry: the next step

    @classmethod
    def for_gateway(cls, config: GatewayConfig) -> Telemetry:
        metrics = None
        if config.metrics.enabled:
            from thrifty.telemetry.metrics import Metrics

            metrics = Metrics(config.metrics)
        return cls(metrics)

    def observe(self, record: LedgerRecord) -> None:
        if self.metrics is not None:
            self.metrics.observe(record)

    def tap(self) -> Callable[[LedgerRecord], None] | None:
        """What the ledger writer calls for each record (None: nothing to observe)."""
        if self.metrics is not None:
            return self.metrics.observe  # one call less on the hot path
        return None

    async def start(self) -> None:
        return

    async def stop(self) -> None:
        return
