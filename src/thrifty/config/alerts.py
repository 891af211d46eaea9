"""``alerts:``: spend anomalies and token drift, checked against the ledger in the background and
delivered like budget alerts (a log line, a ledger row, a webhook; Slack's payload if asked)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AlertsConfig", "AnomalySpec", "DriftSpec"]

Dimension = Literal["feature", "team", "model", "user", "key", "provider"]


def _anomaly_dimensions() -> list[Dimension]:
    return ["feature", "team", "model"]


def _drift_dimensions() -> list[Dimension]:
    return ["feature"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnomalySpec(_Strict):
    enabled: bool = True
    window_s: Annotated[int, Field(ge=300, le=86_400)] = 3600
    """The window whose spend is compared: the last hour by default."""
    k: Annotated[Decimal, Field(gt=1)] = Decimal(3)
    """Fire above this many times the trailing median of the same window of the week."""
    min_usd: Annotated[Decimal, Field(ge=0)] = Decimal(1)
    """...and only above this amount: a feature going from 2 cents to 9 is not news."""
    weeks: Annotated[int, Field(ge=1, le=12)] = 4
    """How many weeks back the median looks."""
    dimensions: list[Dimension] = Field(default_factory=_anomaly_dimensions)


class DriftSpec(_Strict):
    enabled: bool = True
    window_s: Annotated[int, Field(ge=3600, le=7 * 86_400)] = 86_400
    """The recent window whose average input tokens per call is compared with the week before it."""
    threshold_pct: Annotated[float, Field(gt=0)] = 25.0
    min_calls: Annotated[int, Field(ge=1)] = 50
    """Fewer calls than this in either period: no verdict."""
    dimensions: list[Dimension] = Field(default_factory=_drift_dimensions)


class AlertsConfig(_Strict):
    enabled: bool = False
    interval_s: Annotated[float, Field(ge=5, le=3600)] = 60.0
    """How often the ledger is checked (each alert still fires once per window)."""
    anomaly: AnomalySpec = Field(default_factory=AnomalySpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = Field(default_factory=dict)
    webhook_format: Literal["json", "slack"] = "json"
    """``slack``: a Slack-compatible ``{"text": ...}`` body (incoming webhooks), else the event."""
    webhook_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    webhook_timeout_s: Annotated[float, Field(gt=0)] = 5.0

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url
