"""The response caches in-process: ``Thrifty(cache=...)`` runs the gateway's exact and semantic
cache steps around the official SDK clients, with the same config and the same ledger rows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

import thrifty
from thrifty.stores.ledger import open_ledger

FIRST = "How do I enable dark mode?"
PARAPHRASE = "How can I turn on dark mode?"
OPPOSITE = "How do I disable dark mode?"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[thrifty.Thrifty]:
    instance = thrifty.Thrifty(
        ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
        journal_dir=tmp_path / "journal",
        cache={"semantic": {"enabled": True, "threshold": 0.9}},  # looser than the default: mechanics
    )
    yield instance
    instance.close()


def rows(runtime: thrifty.Thrifty, tmp_path: Path) -> list[Any]:
    runtime.runtime.writer.flush(timeout=10)
    store = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        return sorted(store.records(limit=100), key=lambda r: r.id)
    finally:
        store.close()


def ask(client: openai.OpenAI, question: str, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": question}],
        temperature=0,
        max_tokens=30,
        **extra,
    )


def test_exact_and_semantic_hits_in_process(runtime: thrifty.Thrifty, simulator_url: str, tmp_path: Path) -> None:
    client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), team="docs")
    first = ask(client, FIRST)
    again = ask(client, FIRST)
    paraphrase = ask(client, PARAPHRASE)
    opposite = ask(client, OPPOSITE)
    assert [r.headers["x-thrifty-cache"] for r in (first, again, paraphrase, opposite)] == [
        "miss",
        "hit",
        "semantic",
        "miss",
    ]
    assert float(paraphrase.headers["x-thrifty-cache-similarity"]) >= 0.9
    answer = first.parse().choices[0].message.content
    assert again.parse().choices[0].message.content == paraphrase.parse().choices[0].message.content == answer
    assert opposite.parse().choices[0].message.content != answer
    miss, hit, semantic, _ = rows(runtime, tmp_path)
    assert (hit.cache_status, semantic.cache_status) == ("hit", "semantic")
    assert semantic.cost is not None and semantic.cost.total == 0
    assert semantic.details["similarity"] >= 0.9
    assert miss.cost is not None and semantic.savings == {"semantic_cache": miss.cost.total}


def test_streamed_semantic_hit_in_process_async(runtime: thrifty.Thrifty, simulator_url: str, tmp_path: Path) -> None:
    client = runtime.wrap(openai.AsyncOpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))

    async def scenario() -> tuple[str, str]:
        whole = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": FIRST}], temperature=0, max_tokens=30
        )
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": PARAPHRASE}],
            temperature=0,
            max_tokens=30,
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return whole.choices[0].message.content or "", text

    whole, streamed = asyncio.run(scenario())
    assert streamed == whole
    _, hit = rows(runtime, tmp_path)
    assert hit.cache_status == "semantic" and hit.stream and hit.cost is not None and hit.cost.total == Decimal(0)


def test_the_exact_cache_is_on_by_default_in_process(simulator_url: str, tmp_path: Path) -> None:
    instance = thrifty.Thrifty(ledger=f"sqlite:///{tmp_path / 'ledger.db'}", journal_dir=tmp_path / "journal")
    try:
        client = instance.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
        assert ask(client, FIRST).headers["x-thrifty-cache"] == "miss"
        assert ask(client, FIRST).headers["x-thrifty-cache"] == "hit"
        assert ask(client, PARAPHRASE).headers["x-thrifty-cache"] == "miss"  # semantic is off by default
        sampled = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": FIRST}], max_tokens=30
        )
        assert sampled.headers["x-thrifty-cache"] == "bypass"
    finally:
        instance.close()


def test_a_provider_embedders_calls_are_recorded_in_process(simulator_url: str, tmp_path: Path) -> None:
    from tests.support.embeddings import running_embeddings_provider

    with running_embeddings_provider() as (url, _):
        embedder = {"kind": "provider", "base_url": f"{url}/usage/v1", "model": "text-embedding-3-small", "dim": 384}
        instance = thrifty.Thrifty(
            ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
            journal_dir=tmp_path / "journal",
            cache={"semantic": {"enabled": True, "threshold": 0.9, "embedder": embedder}},
        )
        try:
            client = instance.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), team="docs")
            assert ask(client, FIRST).headers["x-thrifty-cache"] == "miss"
            assert ask(client, PARAPHRASE).headers["x-thrifty-cache"] == "semantic"
            recorded = rows(instance, tmp_path)
        finally:
            instance.close()
    embeddings = [r for r in recorded if r.details.get("purpose") == "semantic cache embedding"]
    (miss,) = [r for r in recorded if r.cache_status == "miss" and r not in embeddings]
    (hit,) = [r for r in recorded if r.cache_status == "semantic"]
    assert len(recorded) == 4 and len(embeddings) == 2
    assert sorted(r.usage.input_tokens for r in embeddings) == sorted([len(FIRST), len(PARAPHRASE)])
    assert all(r.team == "docs" and r.cost is not None and r.cost.total > 0 for r in embeddings)
    (spent,) = [r.cost.total for r in embeddings if r.request_id == hit.request_id and r.cost is not None]
    assert hit.cost is not None and hit.cost.total == 0
    assert Decimal(hit.details["semantic_cache"]["embedding_cost_usd"]) == spent
    assert miss.cost is not None and hit.savings == {"semantic_cache": miss.cost.total - spent}


def test_feedback_in_process_evicts_a_wrong_answer(runtime: thrifty.Thrifty, simulator_url: str) -> None:
    client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), team="docs")
    ask(client, FIRST)
    hit = ask(client, PARAPHRASE)
    assert hit.headers["x-thrifty-cache"] == "semantic"
    outcome = runtime.feedback(hit.headers["x-thrifty-request-id"], "wrong", note="not what was asked")
    assert outcome["evicted"] == ["exact", "semantic"] and outcome["cache_status"] == "semantic"
    assert ask(client, PARAPHRASE).headers["x-thrifty-cache"] == "miss"
    with pytest.raises(thrifty.errors.InvalidRequest, match="verdict"):
        runtime.feedback(hit.headers["x-thrifty-request-id"], "maybe")
    with pytest.raises(thrifty.errors.NotFound):
        runtime.feedback("req_not_a_call", "wrong")
