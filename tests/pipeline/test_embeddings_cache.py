"""Embeddings (issue 14.7): identical requests from one tenant are answered from the exact cache at
no cost (they are deterministic), through the gateway and in-process; in-process embedding calls
are priced and recorded like the gateway's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

import thrifty
from tests.support.gateway import RunningGateway, expected_cost
from thrifty.core.pricing import PriceBook
from thrifty.core.usage import Usage
from thrifty.stores.keys import open_keys
from thrifty.stores.ledger import open_ledger

MODEL = "text-embedding-3-small"
TEXTS = ["the quarterly report is due on Friday", "invoices are paid within thirty days"]


def _upstream_embeddings(simulator_url: str) -> int:
    stats = httpx2.get(f"{simulator_url}/_simulator/stats").json()
    return int(stats["by_path"].get("/v1/embeddings", 0))


def _client(gateway: RunningGateway, key: str = "x", **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, default_headers=headers)


def _embed(client: openai.OpenAI, **extra: Any) -> Any:
    return client.embeddings.with_raw_response.create(model=MODEL, input=TEXTS, **extra)


def test_an_identical_embeddings_request_hits_and_costs_nothing(gateway: RunningGateway, simulator_url: str) -> None:
    client = _client(gateway)
    sent = _upstream_embeddings(simulator_url)
    first, second = _embed(client), _embed(client)
    assert first.headers["x-thrifty-cache"] == "miss" and second.headers["x-thrifty-cache"] == "hit"
    assert [d.embedding for d in second.parse().data] == [d.embedding for d in first.parse().data]
    assert _upstream_embeddings(simulator_url) == sent + 1  # the hit was never sent
    miss, hit = gateway.records(2)
    assert miss.cost is not None and miss.cost.total == expected_cost(miss.usage, MODEL, miss) > 0
    assert Usage.from_openai(first.parse().usage.model_dump()).input_tokens == miss.usage.input_tokens
    assert hit.cache_status == "hit" and hit.cost is not None and hit.cost.total == 0
    assert hit.savings == {"exact_cache": miss.cost.total} and hit.counterfactual_cost == miss.cost.total
    assert hit.details["cached_from"] == miss.request_id


def test_what_changes_the_vectors_or_the_tenant_misses(gateway: RunningGateway) -> None:
    client = _client(gateway)
    assert _embed(client).headers["x-thrifty-cache"] == "miss"
    assert _embed(client, dimensions=256).headers["x-thrifty-cache"] == "miss"
    # the SDK asks for base64 unless told: floats are another answer
    assert _embed(client, encoding_format="float").headers["x-thrifty-cache"] == "miss"
    assert _embed(client, user="someone-else").headers["x-thrifty-cache"] == "hit"  # who asked is not the input
    assert _embed(_client(gateway, **{"x-thrifty-cache": "off"})).headers["x-thrifty-cache"] == "bypass"
    store = open_keys(gateway.runtime.config.storage.ledger)
    try:
        _, red = store.create(user=None, team="red", feature=None)
        _, blue = store.create(user=None, team="blue", feature=None)
    finally:
        store.close()
    gateway.runtime.keys.load()
    assert _embed(_client(gateway, red)).headers["x-thrifty-cache"] == "miss"
    assert _embed(_client(gateway, red)).headers["x-thrifty-cache"] == "hit"
    spoofed = _client(gateway, blue, **{"x-thrifty-team": "red"})
    assert _embed(spoofed).headers["x-thrifty-cache"] == "miss"  # blue never reads red's entries


@pytest.fixture
def inprocess(tmp_path: Path) -> Iterator[thrifty.Thrifty]:
    instance = thrifty.Thrifty(ledger=f"sqlite:///{tmp_path / 'ledger.db'}", journal_dir=tmp_path / "journal")
    yield instance
    instance.close()


def _rows(instance: thrifty.Thrifty, tmp_path: Path) -> list[Any]:
    instance.runtime.writer.flush(timeout=10)
    store = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        return sorted(store.records(limit=100), key=lambda r: r.id)
    finally:
        store.close()


def test_in_process_embeddings_are_priced_recorded_and_cached(
    inprocess: thrifty.Thrifty, simulator_url: str, tmp_path: Path
) -> None:
    client = inprocess.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), feature="search")
    sent = _upstream_embeddings(simulator_url)
    first = client.embeddings.with_raw_response.create(model=MODEL, input=TEXTS)
    second = client.embeddings.with_raw_response.create(model=MODEL, input=TEXTS)
    assert first.headers["x-thrifty-cache"] == "miss" and second.headers["x-thrifty-cache"] == "hit"
    assert len(first.parse().data) == 2
    assert _upstream_embeddings(simulator_url) == sent + 1
    miss, hit = _rows(inprocess, tmp_path)
    usage = Usage(input_tokens=first.parse().usage.prompt_tokens)
    assert miss.requested_model == MODEL and miss.feature == "search" and miss.usage == usage
    assert miss.cost is not None and miss.cost.total == PriceBook().price(usage, MODEL, at=miss.ts).cost.total > 0
    assert miss.details["endpoint"] == "embeddings"
    assert hit.cost is not None and hit.cost.total == 0 and hit.savings == {"exact_cache": miss.cost.total}


def test_async_in_process_embeddings_are_recorded(
    inprocess: thrifty.Thrifty, simulator_url: str, tmp_path: Path
) -> None:
    client = inprocess.wrap(openai.AsyncOpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
    result = asyncio.run(
        client.embeddings.create(model=MODEL, input="one line", extra_headers={"x-thrifty-cache": "off"})
    )
    assert result.data
    (row,) = _rows(inprocess, tmp_path)
    assert row.cache_status == "bypass" and row.usage.input_tokens == result.usage.prompt_tokens > 0
    assert row.cost is not None and row.cost.total > 0


def test_in_process_embeddings_with_a_bad_body_fail_as_the_gateway_does(
    inprocess: thrifty.Thrifty, simulator_url: str
) -> None:
    client = inprocess.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test", max_retries=0))
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=MODEL, input=[], extra_body={})
    assert "input" in str(refused.value)
