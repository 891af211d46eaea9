"""Prometheus metrics from ledger records: each record handed to the ledger writer is observed here
once (``Metrics.observe``), so the counters equal the ledger's sums by construction.

Several worker processes (``thrifty serve --workers N``): prometheus_client's multiprocess mode.
The supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` to a directory of its own run before anything
imports prometheus_client (see ``thrifty.telemetry.multiproc``); each worker then keeps its values
in memory-mapped files there, and a scrape of any worker sums every worker's files -- the figures
of the whole gateway, whichever worker the kernel hands the scrape to.

The hot path: one dict lookup for a record's label values, then ``inc`` on children resolved the
first time those values were seen (``_Series``); no label parsing, no allocation beyond the key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from thrifty.config.telemetry import MetricsSpec
from thrifty.core.ledger import LedgerRecord

__all__ = ["CONTENT_TYPE", "Metrics", "budget_families"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

ALERT_STATUS = "budget_alert"
"""A budget alert's ledger row (``pipeline.alerts``): an event, not a call."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_CACHE_KINDS = {"hit": "exact", "semantic": "semantic"}
"""A ledger ``cache_status`` that means the answer came from a cache, and which cache."""


class _Series:
    """The children of one combination of the base labels (model, provider, team, feature[, user,
    key]), resolved once."""

    __slots__ = (
        "cache",
        "counterfactual",
        "labels",
        "metrics",
        "requests",
        "savings",
        "spend",
        "tokens",
        "unpriced",
    )

    def __init__(self, metrics: Metrics, labels: tuple[str, ...]) -> None:
        self.metrics = metrics
        self.labels = labels
        self.requests: dict[str, Any] = {}
        self.tokens = tuple(metrics.tokens.labels(*labels, kind) for kind in metrics.TOKEN_KINDS)
        self.spend = metrics.spend.labels(*labels)
        self.counterfactual = metrics.counterfactual.labels(*labels)
        self.unpriced = metrics.unpriced.labels(*labels)
        self.savings: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}

    def request(self, status: str) -> Any:
        child = self.requests.get(status)
        if child is None:
            child = self.requests[status] = self.metrics.requests.labels(*self.labels, status)
        return child

    def saving(self, strategy: str) -> Any:
        child = self.savings.get(strategy)
        if child is None:
            child = self.savings[strategy] = self.metrics.savings.labels(*self.labels, strategy)
        return child

    def cache_hit(self, kind: str) -> Any:
        child = self.cache.get(kind)
        if child is None:
            child = self.cache[kind] = self.metrics.cache_hits.labels(*self.labels, kind)
        return child


class Metrics:
    TOKEN_KINDS = ("input", "output", "cached_read", "cache_write", "reasoning")

    def __init__(self, spec: MetricsSpec) -> None:
        self.per_user = spec.per_user
        # The value class is chosen once, when prometheus_client is first imported: multiprocess
        # only when the supervisor set the directory before that (``multiproc.prepare``).
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.multiprocess_dir = directory if directory and values.ValueClass is not values.MutexValue else None
        self.registry = registry = CollectorRegistry(auto_describe=False)
        base = ["model", "provider", "team", "feature"] + (["user", "key"] if spec.per_user else [])
        self.base_labels = tuple(base)

        def counter(name: str, doc: str, labels: Sequence[str]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.requests = counter(
            "thrifty_requests", "Model calls recorded in the ledger, by outcome status.", [*base, "status"]
        )
        self.tokens = counter(
            "thrifty_tokens",
            "Tokens of recorded calls. input counts all input tokens (cached_read and cache_write included, "
            "as the ledger's input_tokens); output includes reasoning.",
            [*base, "kind"],
        )
        self.spend = counter("thrifty_spend_usd", "What recorded calls cost, in USD (priced calls only).", base)
        self.counterfactual = counter(
            "thrifty_counterfactual_spend_usd", "What recorded calls would have cost with no optimisation, USD.", base
        )
        self.unpriced = counter("thrifty_unpriced_requests", "Recorded calls whose cost is unknown.", base)
        self.savings = counter("thrifty_savings_usd", "Money saved, USD, by strategy.", [*base, "strategy"])
        self.cache_hits = counter("thrifty_cache_hits", "Calls answered from a cache, by cache.", [*base, "kind"])
        self.route_decisions = counter(
            "thrifty_route_decisions",
            "Routing decisions, by source (rules, learned, classifier, pinned, ...), model asked for and served.",
            ["source", "requested_model", "model"],
        )
        self.upstream_errors = counter(
            "thrifty_upstream_errors",
            "Upstream attempts that failed, by HTTP status or error.",
            ["model", "provider", "status"],
        )
        self.retries = counter(
            "thrifty_upstream_retries",
            "Upstream attempts after a call's first (retries and fallbacks).",
            ["model", "provider"],
        )
        self.budget_alerts = counter("thrifty_budget_alerts", "Budget alerts sent.", ["scope"])
        self.dropped_spans = counter(
            "thrifty_otel_dropped_spans", "OpenTelemetry spans dropped (queue full, or export failed).", ["reason"]
        )
        self.exported_spans = counter("thrifty_otel_exported_spans", "OpenTelemetry spans the collector accepted.", [])
        self.latency = Histogram(
            "thrifty_request_duration_seconds",
            "A call's time in the gateway, from its arrival to its last byte.",
            ["model", "provider", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "thrifty_time_to_first_token_seconds",
            "From a call's arrival to its first token (a whole response: its first byte from upstream).",
            ["model", "provider", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._series: dict[tuple[str, ...], _Series] = {}
        self._timings: dict[tuple[str, str, bool], tuple[Any, Any]] = {}

    def observe(self, record: LedgerRecord) -> None:
        """One ledger record: cheap, on the request's path (the ledger writer calls it)."""
        status = record.status
        if status == ALERT_STATUS:
            self._alert(record)
            return
        model = record.served_model or record.requested_model
        provider = record.provider or ""
        if self.per_user:
            key: tuple[str, ...] = (
                model,
                provider,
                record.team or "",
                record.feature or "",
                record.user or "",
                record.key_id or "",
            )
        else:
            key = (model, provider, record.team or "", record.feature or "")
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, key)
        series.request(status).inc()
        usage = record.usage
        tokens = series.tokens
        if usage.input_tokens:
            tokens[0].inc(usage.input_tokens)
        if usage.output_tokens:
            tokens[1].inc(usage.output_tokens)
        if usage.cache_read_tokens:
            tokens[2].inc(usage.cache_read_tokens)
        if usage.cache_write_5m_tokens or usage.cache_write_1h_tokens:
            tokens[3].inc(usage.cache_write_5m_tokens + usage.cache_write_1h_tokens)
        if usage.reasoning_tokens:
            tokens[4].inc(usage.reasoning_tokens)
        cost = record.cost
        if cost is None:
            series.unpriced.inc()
        elif cost.total:
            series.spend.inc(float(cost.total))
        if record.counterfactual_cost:
            series.counterfactual.inc(float(record.counterfactual_cost))
        for strategy, saved in record.savings.items():
            if saved:
                series.saving(strategy).inc(float(saved))
        cached = _CACHE_KINDS.get(record.cache_status or "")
        if cached is not None:
            series.cache_hit(cached).inc()
        if record.route is not None:
            source = record.route.split(":", 1)[0]
            self.route_decisions.labels(source, record.requested_model, model).inc()
        details = record.details
        attempts = details.get("attempts") if details else None
        if attempts and "attempt" not in details:  # a lost attempt's own row repeats one of these
            self._attempts(attempts)
        self._time(model, provider, record)

    def _time(self, model: str, provider: str, record: LedgerRecord) -> None:
        key = (model, provider, record.stream)
        children = self._timings.get(key)
        if children is None:
            stream = "true" if record.stream else "false"
            children = self._timings[key] = (
                self.latency.labels(model, provider, stream),
                self.ttft.labels(model, provider, stream),
            )
        if record.latency_ms is not None:
            children[0].observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            children[1].observe(record.ttft_ms / 1000)

    def _attempts(self, attempts: Iterable[Any]) -> None:
        for index, note in enumerate(attempts):
            if not isinstance(note, dict):
                continue
            model, provider = str(note.get("model", "")), str(note.get("provider", ""))
            if index:
                self.retries.labels(model, provider).inc()
            status = note.get("status")
            if status != 200 and (status is not None or "error" in note):
                self.upstream_errors.labels(model, provider, str(status or "error")).inc()

    def _alert(self, record: LedgerRecord) -> None:
        event = record.details.get("budget_alert") if record.details else None
        scope = event.get("scope") if isinstance(event, dict) else None
        self.budget_alerts.labels(str(scope or "")).inc()

    def exposition(self, extra: Sequence[Metric] = ()) -> bytes:
        """The text a scrape gets: every worker's values (multiprocess) or this process's, and
        ``extra`` families computed for this scrape (the budgets')."""
        registry = CollectorRegistry(auto_describe=False)
        if self.multiprocess_dir is not None:
            MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            registry.register(_Families(self.registry.collect))
        if extra:
            fixed = list(extra)
            registry.register(_Families(lambda: iter(fixed)))
        return generate_latest(registry)


class _Families:
    def __init__(self, collect: Any) -> None:
        self.collect = collect


def budget_families(statuses: Sequence[Any], per_user: bool) -> list[Metric]:
    """Each budget's spend and limit now (``pipeline.budgets.status.BudgetStatus``), as gauges
    read from the shared budget store at scrape time: the same figures from any worker. The
    per-subject rows of user and key budgets only with ``per_user`` (cardinality)."""
    labels = ["budget", "scope", "subject", "unit"]
    spend = GaugeMetricFamily(
        "thrifty_budget_spend", "Spend in the budget's current window, in its unit.", labels=labels
    )
    limit = GaugeMetricFamily("thrifty_budget_limit", "The budget's limit, in its unit.", labels=labels)
    ratio = GaugeMetricFamily("thrifty_budget_utilisation_ratio", "Spend over limit.", labels=labels)
    for status in statuses:
        budget = status.budget
        if budget.scope in ("user", "key") and budget.value is None and not per_user:
            continue
        unit = budget.unit
        values_ = [budget.id, budget.scope, status.subject, unit]
        spend.add_metric(values_, _amount(unit, status.spent))
        limit.add_metric(values_, _amount(unit, budget.limit))
        ratio.add_metric(values_, float(status.utilisation))
    return [spend, limit, ratio]


def _amount(unit: str, units: int) -> float:
    from thrifty.pipeline.budgets.engine import amount_json

    amount = amount_json(unit, units)
    return float(Decimal(amount)) if isinstance(amount, str) else float(amount)
