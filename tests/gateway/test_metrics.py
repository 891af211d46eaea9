"""``GET /metrics`` after known traffic through the official openai SDK: every counter equals the
ledger's own sums (requests, tokens, spend, savings, cache hits), labels by model, provider, team
and feature; user and key labels only with ``metrics.per_user``; ``metrics.enabled: false`` is 404."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import RunningGateway, running_gateway
from thrifty.config.telemetry import MetricsSpec
from thrifty.core.ledger import LedgerRecord
from thrifty.telemetry.metrics import Metrics, budget_families

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]


def _samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx2.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[sample.name].append((dict(sample.labels), sample.value))
    return out


def _total(samples: list[tuple[dict[str, str], float]], **match: str) -> float:
    return sum(value for labels, value in samples if all(labels.get(k) == v for k, v in match.items()))


def _traffic(gateway: RunningGateway) -> list[LedgerRecord]:
    team_a = openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"x-thrifty-team": "search", "x-thrifty-feature": "answers", "x-thrifty-user": "ada"},
    )
    team_b = openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"x-thrifty-team": "billing", "x-thrifty-feature": "summaries", "x-thrifty-user": "bob"},
    )
    for _ in range(3):
        team_a.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=30)
    team_b.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=50)
    list(
        team_b.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=40, stream=True, stream_options={"include_usage": True}
        )
    )
    cached = [{"role": "user", "content": "A question asked twice, answered once."}]
    for _ in range(2):  # the second is an exact-cache hit: nothing billed, its saving recorded
        team_a.chat.completions.create(model="gpt-4o", messages=cached, max_tokens=20, temperature=0)
    gateway.fault("gpt-4o", "500")  # one failed attempt, then a retry that succeeds
    team_a.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=10)
    return gateway.records(8)


def test_counters_equal_the_ledgers_totals(gateway: RunningGateway) -> None:
    records = _traffic(gateway)
    assert len(records) == 8
    samples = _samples(gateway.url)

    assert _total(samples["thrifty_requests_total"]) == len(records)
    by_model: dict[str, int] = defaultdict(int)
    for record in records:
        by_model[record.served_model or record.requested_model] += 1
    for model, count in by_model.items():
        assert _total(samples["thrifty_requests_total"], model=model) == count
    assert _total(samples["thrifty_requests_total"], team="search", feature="answers") == sum(
        1 for r in records if r.team == "search"
    )

    tokens = samples["thrifty_tokens_total"]
    assert _total(tokens, kind="input") == sum(r.usage.input_tokens for r in records)
    assert _total(tokens, kind="output") == sum(r.usage.output_tokens for r in records)
    assert _total(tokens, kind="cached_read") == sum(r.usage.cache_read_tokens for r in records)
    assert _total(tokens, kind="input", team="billing", model="gpt-4o-mini") == sum(
        r.usage.input_tokens for r in records if r.team == "billing"
    )

    spend = sum((r.cost.total for r in records if r.cost is not None), Decimal(0))
    assert spend > 0
    scraped = Decimal(repr(_total(samples["thrifty_spend_usd_total"])))
    assert abs(scraped - spend) < Decimal("1e-12"), (scraped, spend)
    per_team = sum((r.cost.total for r in records if r.cost is not None and r.team == "billing"), Decimal(0))
    assert abs(Decimal(repr(_total(samples["thrifty_spend_usd_total"], team="billing"))) - per_team) < Decimal("1e-12")

    saved = sum((v for r in records for k, v in r.savings.items() if k == "exact_cache"), Decimal(0))
    assert saved > 0
    scraped_saved = _total(samples["thrifty_savings_usd_total"], strategy="exact_cache")
    assert abs(Decimal(repr(scraped_saved)) - saved) < Decimal("1e-12")
    hits = sum(1 for r in records if r.cache_status == "hit")
    assert hits == 1
    assert _total(samples["thrifty_cache_hits_total"], kind="exact") == hits

    assert _total(samples["thrifty_upstream_errors_total"], status="500") == 1
    assert _total(samples["thrifty_upstream_retries_total"], model="gpt-4o") == 1
    latency = samples["thrifty_request_duration_seconds_count"]
    assert _total(latency) == sum(1 for r in records if r.latency_ms is not None)
    assert _total(samples["thrifty_time_to_first_token_seconds_count"], stream="true") == 1

    # No user or key label unless metrics.per_user.
    assert all("user" not in labels and "key" not in labels for labels, _ in samples["thrifty_requests_total"])


def test_per_user_labels_when_asked(simulator_url: str, tmp_path: Path) -> None:
    with running_gateway(simulator_url, tmp_path, metrics={"per_user": True}) as gateway:
        client = openai.OpenAI(
            base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, default_headers={"x-thrifty-user": "ada"}
        )
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
        gateway.records(1)
        samples = _samples(gateway.url)
    assert _total(samples["thrifty_requests_total"], user="ada") == 1
    assert {labels.get("user") for labels, _ in samples["thrifty_requests_total"]} == {"ada"}


def test_budget_gauges_show_spend_and_limit(simulator_url: str, tmp_path: Path) -> None:
    budgets = {"limits": [{"scope": "global", "usd": "5", "window": "month"}], "refresh_s": 0.2}
    with running_gateway(simulator_url, tmp_path, budgets=budgets) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
        (record,) = gateway.records(1)
        samples = _samples(gateway.url)
    assert record.cost is not None
    assert _total(samples["thrifty_budget_limit"], scope="global", unit="usd") == 5.0
    assert abs(_total(samples["thrifty_budget_spend"], scope="global") - float(record.cost.total)) < 1e-9


def test_metrics_off_is_404(simulator_url: str, tmp_path: Path) -> None:
    with running_gateway(simulator_url, tmp_path, metrics={"enabled": False}) as gateway:
        response = httpx2.get(f"{gateway.url}/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_the_grafana_dashboard_uses_only_metrics_the_gateway_exports() -> None:
    dashboard = (Path(__file__).parents[2] / "examples" / "grafana" / "thrifty.json").read_text()
    used = set(re.findall(r"\bthrifty_[a-z_]+", dashboard)) - {"thrifty_gateway"}  # the dashboard's uid
    metrics = Metrics(MetricsSpec())
    exported = {sample_name for family in metrics.registry.collect() for sample_name in _sample_names(family)}
    exported |= {family.name for family in budget_families([], per_user=False)}
    assert used, dashboard[:200]
    assert used <= exported, used - exported


def _sample_names(family: Any) -> set[str]:
    if family.type == "histogram":
        return {f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"}
    if family.type == "counter":
        return {f"{family.name}_total"}
    return {family.name}
