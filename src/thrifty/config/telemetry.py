"""The ``metrics:`` and ``otel:`` sections: Prometheus ``/metrics`` and OpenTelemetry spans."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["MetricsSpec", "OtelSpec"]


class MetricsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """``GET /metrics`` in Prometheus' text format; off: that path answers 404."""
    per_user: bool = False
    """Label series by ``user`` and ``key`` too. Off by default: one series per user is how a
    Prometheus server runs out of memory (cardinality)."""


class OtelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: Annotated[str, Field(min_length=1)]
    """The OTLP/HTTP base URL: spans are POSTed to ``{endpoint}/v1/traces`` (protobuf), e.g.
    ``http://localhost:4318`` or Langfuse's ``https://cloud.langfuse.com/api/public/otel``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent with each export (``Authorization: Basic ...`` for Langfuse). Never logged."""
    export_content: bool = False
    """Prompts and answers go on the span (``gen_ai.input.messages``, ``gen_ai.output.messages``)
    only when true; by default a span carries counts, money and names, never content."""
    service_name: Annotated[str, Field(min_length=1)] = "thrifty"
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 256
    """Spans per export request at most."""
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How long a span may wait for a batch to fill before it is sent anyway."""
    queue_size: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    """Spans waiting to be sent at most; beyond it new spans are dropped and counted
    (``thrifty_otel_dropped_spans_total``): a slow collector never grows the gateway's memory."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    """One export request's time limit."""
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    """Tries per batch (with a doubling pause) before its spans are dropped and counted."""

    @field_validator("endpoint")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL (OTLP over HTTP)")
        return value.rstrip("/")
