"""The semantic response cache through the gateway, with the official SDKs over loopback: a
paraphrase hits (whole or replayed as a stream), costs nothing and records its similarity and
saving; an opposite question, another system prompt, another tenant or another cache version never
hits; ``thrifty cache clear`` removes entries; a broken backend is a miss. The core tests run
against both index backends: the local one and pgvector on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml

from tests.support.embeddings import EmbeddingsProvider, running_embeddings_provider
from tests.support.gateway import RunningGateway, expected_cost, running_gateway
from tests.support.pgvector import pgvector_server, pgvector_url  # noqa: F401  (fixtures)
from thrifty.core.usage import Usage

FIRST = "How do I enable dark mode?"
PARAPHRASE = "How can I turn on dark mode?"
OPPOSITE = "How do I disable dark mode?"
THIRD = "How can I enable dark mode?"
SECRET = "sk-live-never-stored-0123456789"


def semantic_config(**semantic: Any) -> dict[str, Any]:
    # These tests are about the cache's mechanics, so they use a looser threshold than the default
    # (0.97, tuned for precision 0.95 on Quora pairs); the guard and verifier stay on.
    return {"cache": {"semantic": {"enabled": True, "threshold": 0.9, **semantic}}}


@pytest.fixture(params=["local", "pgvector"])
def index(request: pytest.FixtureRequest) -> str:
    """The semantic index backend: ``local`` or a fresh pgvector database's URL."""
    if request.param == "local":
        return "local"
    url: str = request.getfixturevalue("pgvector_url")
    return url


@pytest.fixture
def gateway(simulator_url: str, tmp_path: Path, index: str) -> Iterator[RunningGateway]:
    with running_gateway(simulator_url, tmp_path, **semantic_config(index=index)) as running:
        yield running


def gpt(gateway: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=SECRET, max_retries=0, default_headers=headers)


def ask(client: openai.OpenAI, question: str, *, system: str | None = None, **extra: Any) -> Any:
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    arguments: dict[str, Any] = {"model": "gpt-4o-mini", "messages": messages, "temperature": 0, "max_tokens": 30}
    arguments.update(extra)
    return client.chat.completions.with_raw_response.create(**arguments)


def status(response: Any) -> str:
    return str(response.headers["x-thrifty-cache"])


def text(response: Any) -> str:
    return str(response.parse().choices[0].message.content)


# -- the core behaviour, on both backends ------------------------------------------------------


def test_a_paraphrase_hits_costs_nothing_and_records_its_similarity(gateway: RunningGateway, index: str) -> None:
    client = gpt(gateway)
    first = ask(client, FIRST)
    second = ask(client, PARAPHRASE)
    assert status(first) == "miss"
    assert status(second) == "semantic"
    similarity = float(second.headers["x-thrifty-cache-similarity"])
    assert 0.9 <= similarity < 1.0
    assert text(second) == text(first)  # the stored answer, not a new one
    assert Decimal(second.headers["x-thrifty-cost-usd"]) == 0
    miss, hit = gateway.records(2)
    assert hit.cache_status == "semantic"
    assert hit.cost is not None and hit.cost.total == 0
    assert hit.usage.input_tokens == 0  # the provider was not called
    assert hit.details["similarity"] == pytest.approx(similarity, abs=1e-4)
    assert hit.details["cached_from"] == miss.request_id
    assert miss.cost is not None and miss.cost.total > 0
    assert hit.counterfactual_cost == miss.cost.total == expected_cost(miss.usage, "gpt-4o-mini", miss)
    assert hit.savings == {"semantic_cache": miss.cost.total}
    assert len(gateway.records(2)) == 2  # the local model costs nothing: no embedding rows
    assert "embedding_cost_usd" not in hit.details["semantic_cache"]
    if index != "local":  # pgvector keeps the entries beside the vectors
        import psycopg

        with psycopg.connect(index) as conn:
            stored = conn.execute(b"SELECT count(*) FROM thrifty_semantic_entries").fetchone()
            vectors = conn.execute(b"SELECT count(*) FROM thrifty_semantic_vectors").fetchone()
        assert stored == vectors == (1,)


def test_the_opposite_question_does_not_hit(gateway: RunningGateway) -> None:
    client = gpt(gateway)
    ask(client, FIRST)
    opposite = ask(client, OPPOSITE)
    assert status(opposite) == "miss"
    assert text(opposite) != text(ask(client, FIRST))
    row = gateway.records(3)[1]
    assert row.cache_status == "miss"
    assert "semantic_cache" in row.details


def test_a_different_system_prompt_never_hits(gateway: RunningGateway) -> None:
    client = gpt(gateway)
    ask(client, FIRST, system="You are a helpful assistant.")
    assert status(ask(client, PARAPHRASE, system="You are a pirate.")) == "miss"
    assert status(ask(client, FIRST, system="You are a pirate!")) == "miss"  # even the same question
    assert status(ask(client, PARAPHRASE)) == "miss"  # nor no system prompt at all
    assert status(ask(client, PARAPHRASE, system="You are a helpful assistant.")) == "semantic"


def test_every_parameter_is_part_of_the_context(gateway: RunningGateway) -> None:
    client = gpt(gateway)
    ask(client, FIRST)
    assert status(ask(client, PARAPHRASE, max_tokens=31)) == "miss"
    assert status(ask(client, PARAPHRASE, model="gpt-4o")) == "miss"
    assert status(ask(client, PARAPHRASE, user="someone-else")) == "semantic"  # attribution is not


def test_two_tenants_asking_the_same_question_never_share(gateway: RunningGateway) -> None:
    red = gpt(gateway, **{"x-thrifty-team": "red"})
    blue = gpt(gateway, **{"x-thrifty-team": "blue"})
    red_first = ask(red, FIRST)
    blue_first = ask(blue, PARAPHRASE)
    assert status(red_first) == "miss"
    assert status(blue_first) == "miss"  # red's answer is not blue's
    assert text(red_first) != text(blue_first)
    red_again = ask(red, PARAPHRASE)
    blue_again = ask(blue, THIRD)
    assert status(red_again) == status(blue_again) == "semantic"  # each from its own entries
    assert text(red_again) == text(red_first)
    assert text(blue_again) == text(blue_first)


def test_the_cache_version_invalidates(gateway: RunningGateway) -> None:
    v1 = gpt(gateway, **{"x-thrifty-cache-version": "docs-v1"})
    v2 = gpt(gateway, **{"x-thrifty-cache-version": "docs-v2"})
    ask(v1, FIRST)
    assert status(ask(v2, PARAPHRASE)) == "miss"
    assert status(ask(gpt(gateway), PARAPHRASE)) == "miss"
    assert status(ask(v1, PARAPHRASE)) == "semantic"


def test_cache_clear_removes_semantic_entries(gateway: RunningGateway, tmp_path: Path) -> None:
    red = gpt(gateway, **{"x-thrifty-team": "red"})
    blue = gpt(gateway, **{"x-thrifty-team": "blue"})
    ask(red, FIRST)
    ask(blue, FIRST)
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(gateway.runtime.config.model_dump(mode="json", exclude_defaults=True)))
    cli = [sys.executable, "-m", "thrifty.cli.main", "cache", "clear", "--config", str(config_file)]
    out = subprocess.run([*cli, "--namespace", "team:red"], capture_output=True, text=True, check=True)
    assert "cleared" in out.stdout
    time.sleep(1.1)  # gateways re-check the SQLite cache's clear generation once a second
    assert status(ask(red, PARAPHRASE)) == "miss"  # its entry is gone
    assert status(ask(blue, PARAPHRASE)) == "semantic"  # another namespace's stays
    subprocess.run(cli, capture_output=True, text=True, check=True)
    time.sleep(1.1)
    assert status(ask(blue, THIRD)) == "miss"


def test_a_semantic_hit_on_a_stream_is_replayed_as_a_stream(gateway: RunningGateway) -> None:
    client = gpt(gateway)
    whole = ask(client, FIRST).parse()
    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": PARAPHRASE}],
        temperature=0,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert stream.headers["x-thrifty-cache"] == "semantic"
    assert "x-thrifty-cache-similarity" in stream.headers
    chunks = list(stream.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    _, hit = gateway.records(2)
    assert hit.cache_status == "semantic" and hit.stream and hit.cost is not None and hit.cost.total == 0


# -- on the local backend ----------------------------------------------------------------------


@pytest.fixture
def local_gateway(simulator_url: str, tmp_path: Path) -> Iterator[RunningGateway]:
    with running_gateway(simulator_url, tmp_path, **semantic_config()) as running:
        yield running


def test_a_streamed_answer_is_stored_and_anthropic_hits_keep_their_shape(local_gateway: RunningGateway) -> None:
    claude = anthropic.Anthropic(base_url=local_gateway.url, api_key=SECRET, max_retries=0)

    def kwargs(question: str) -> dict[str, Any]:
        return {
            "model": "claude-haiku-4-5",
            "max_tokens": 30,
            "messages": [{"role": "user", "content": question}],
            "extra_body": {"temperature": 0},
        }

    with claude.messages.stream(**kwargs(FIRST)) as stream:
        first = stream.get_final_message()
    raw = claude.messages.with_raw_response.create(**kwargs(PARAPHRASE))
    assert raw.headers["x-thrifty-cache"] == "semantic"
    assert raw.parse().content[0].text == first.content[0].text  # type: ignore[union-attr]
    with claude.messages.stream(**kwargs(THIRD)) as stream:
        replayed = stream.get_final_message()
    assert replayed.content[0].text == first.content[0].text  # type: ignore[union-attr]
    assert replayed.usage.output_tokens == first.usage.output_tokens
    # The same question from the OpenAI API is another context: never the Anthropic-shaped answer.
    assert status(ask(gpt(local_gateway), PARAPHRASE, model="claude-haiku-4-5")) == "miss"


def test_sampled_requests_and_cache_off_bypass(local_gateway: RunningGateway) -> None:
    client = gpt(local_gateway)
    ask(client, FIRST)
    sampled = ask(client, PARAPHRASE, temperature=0.7)
    assert status(sampled) == "bypass"
    assert status(ask(gpt(local_gateway, **{"x-thrifty-cache": "off"}), PARAPHRASE)) == "bypass"
    assert status(ask(gpt(local_gateway, **{"x-thrifty-cache": "force"}), PARAPHRASE, temperature=0.7)) == "miss"


def test_entries_never_hold_api_keys_and_the_index_survives_a_restart(simulator_url: str, tmp_path: Path) -> None:
    import sqlite3

    with running_gateway(simulator_url, tmp_path, **semantic_config()) as gateway:
        ask(gpt(gateway), FIRST)
        gateway.records(1)
    database = sqlite3.connect(tmp_path / "ledger.db")
    values = [bytes(v) for (v,) in database.execute("SELECT value FROM response_cache")]
    database.close()
    assert len(values) == 2  # the exact entry and the semantic one
    assert all(SECRET.encode() not in v and b"authorization" not in v.lower() for v in values)
    assert any(b'"question":"How do I enable dark mode?"' in v for v in values)
    assert (tmp_path / "ledger.db.semantic-index").is_file()  # saved at shutdown
    with running_gateway(simulator_url, tmp_path, **semantic_config()) as gateway:
        assert status(ask(gpt(gateway), PARAPHRASE)) == "semantic"


def test_oversized_answers_are_not_cached(simulator_url: str, tmp_path: Path) -> None:
    overrides = {"cache": {"exact": {"max_entry_bytes": 300}, "semantic": {"enabled": True}}}
    with running_gateway(simulator_url, tmp_path, **overrides) as gateway:
        client = gpt(gateway)
        ask(client, FIRST)
        assert status(ask(client, PARAPHRASE)) == "miss"


def test_a_namespace_threshold_overrides_the_default(simulator_url: str, tmp_path: Path) -> None:
    overrides = semantic_config(namespaces={"team:strict": {"threshold": 0.999}})
    with running_gateway(simulator_url, tmp_path, **overrides) as gateway:
        strict = gpt(gateway, **{"x-thrifty-team": "strict"})
        relaxed = gpt(gateway, **{"x-thrifty-team": "relaxed"})
        ask(strict, FIRST)
        ask(relaxed, FIRST)
        assert status(ask(strict, PARAPHRASE)) == "miss"
        assert status(ask(relaxed, PARAPHRASE)) == "semantic"


# -- a broken backend is a miss ----------------------------------------------------------------


def test_a_dead_pgvector_is_a_miss_not_a_failure(simulator_url: str, tmp_path: Path) -> None:
    overrides = semantic_config(index="postgresql://thrifty@127.0.0.1:1/nothing")  # nothing listens
    with running_gateway(simulator_url, tmp_path, **overrides) as gateway:
        client = gpt(gateway)
        first = ask(client, FIRST)
        assert status(first) == "miss" and text(first)
        assert status(ask(client, PARAPHRASE)) == "miss"
        assert status(ask(client, FIRST)) == "hit"  # the exact cache still works
        rows = gateway.records(3)
        assert rows[1].details["semantic_cache"]["reason"].startswith("backend error")


def test_a_failing_embedder_is_a_miss_not_a_failure(simulator_url: str, tmp_path: Path) -> None:
    embedder = {"kind": "provider", "base_url": "http://127.0.0.1:1/v1", "model": "text-embedding-3-small", "dim": 8}
    with running_gateway(simulator_url, tmp_path, **semantic_config(embedder=embedder)) as gateway:
        client = gpt(gateway)
        assert status(ask(client, FIRST)) == "miss"
        assert status(ask(client, PARAPHRASE)) == "miss"
        rows = gateway.records(2)
        assert len(rows) == 2  # nothing was billed for the failed embeddings: no rows of theirs
        assert all("embedding_cost_usd" not in r.details["semantic_cache"] for r in rows)


def test_a_provider_embedder_serves_the_cache(simulator_url: str, tmp_path: Path) -> None:
    """The simulator's embeddings endpoint stands in for a provider's (its vectors are not
    semantic, so only the identical question is checked to hit through it)."""
    embedder = {"kind": "provider", "base_url": f"{simulator_url}/v1", "model": "text-embedding-3-small", "dim": 1536}
    overrides = {"cache": {"exact": {"enabled": False}, "semantic": {"enabled": True, "embedder": embedder}}}
    with running_gateway(simulator_url, tmp_path, **overrides) as gateway:
        client = gpt(gateway)
        assert status(ask(client, FIRST)) == "miss"
        assert status(ask(client, FIRST)) == "semantic"


# -- a provider embedder's calls are paid for, and recorded -------------------------------------


@pytest.fixture(scope="module")
def embeddings_provider() -> Iterator[tuple[str, EmbeddingsProvider]]:
    with running_embeddings_provider() as running:
        yield running


def provider_overrides(base_url: str, model: str = "text-embedding-3-small") -> dict[str, Any]:
    embedder = {"kind": "provider", "base_url": base_url, "model": model, "dim": 384}
    return semantic_config(embedder=embedder)


def by_role(rows: list[Any]) -> tuple[Any, Any, Any, Any]:
    """(the miss's embedding row, the miss, the hit's embedding row, the hit): an embedding row and
    its request's row may be written in the same millisecond, so their ids need not be in order."""
    embeddings = [r for r in rows if r.details.get("purpose") == "semantic cache embedding"]
    (miss,) = [r for r in rows if r not in embeddings and r.cache_status == "miss"]
    (hit,) = [r for r in rows if r.cache_status == "semantic"]
    (first,) = [r for r in embeddings if r.request_id == miss.request_id]
    (second,) = [r for r in embeddings if r.request_id == hit.request_id]
    assert len(rows) == 4
    return first, miss, second, hit


def test_a_provider_embedders_calls_are_ledger_rows_and_net_of_the_hits_saving(
    simulator_url: str, tmp_path: Path, embeddings_provider: tuple[str, EmbeddingsProvider]
) -> None:
    url, provider = embeddings_provider
    provider.inputs.clear()
    with running_gateway(simulator_url, tmp_path, **provider_overrides(f"{url}/usage/v1")) as gateway:
        client = gpt(gateway, **{"x-thrifty-team": "red", "x-thrifty-feature": "help"})
        assert status(ask(client, FIRST)) == "miss"
        second = ask(client, PARAPHRASE)
        assert status(second) == "semantic"
        assert Decimal(second.headers["x-thrifty-cost-usd"]) == 0
        rows = gateway.records(4)
    assert provider.inputs == [FIRST, PARAPHRASE]  # one paid call per question
    first_embedding, miss, hit_embedding, hit = by_role(rows)
    costs = []
    for row, question, served in ((first_embedding, FIRST, miss), (hit_embedding, PARAPHRASE, hit)):
        # The request it served (its id) and that request's attribution.
        assert (
            (row.team, row.feature, row.key_id) == (served.team, served.feature, served.key_id) == ("red", "help", None)
        )
        assert row.requested_model == row.served_model == "text-embedding-3-small"
        assert row.status == "ok" and row.http_status == 200 and not row.stream
        assert row.usage == Usage(input_tokens=len(question))  # the provider's usage.prompt_tokens
        assert "usage_estimated" not in row.details
        assert row.cost is not None
        assert row.cost.total == expected_cost(row.usage, "text-embedding-3-small", row) > 0  # exact
        costs.append(row.cost.total)
    first_cost, hit_cost = costs
    # The miss: its embedding row carries the cost as a negative saving (nothing would have been
    # embedded without the cache), and the question's row reports it.
    assert first_embedding.savings == {"semantic_cache": -first_cost}
    assert first_embedding.counterfactual_cost == 0
    assert Decimal(miss.details["semantic_cache"]["embedding_cost_usd"]) == first_cost
    assert miss.details["semantic_cache"]["embedding_input_tokens"] == len(FIRST)
    assert miss.savings == {} and miss.cost is not None and miss.cost.total > 0
    # The hit: cost 0 in its own row; the embedding is what it cost, and comes off its saving.
    assert hit.cost is not None and hit.cost.total == 0
    assert hit.counterfactual_cost == miss.cost.total
    assert hit.details["semantic_cache"]["embedding_model"] == "text-embedding-3-small"
    assert hit.details["semantic_cache"]["embedding_input_tokens"] == len(PARAPHRASE)
    assert Decimal(hit.details["semantic_cache"]["embedding_cost_usd"]) == hit_cost
    assert hit.savings == {"semantic_cache": miss.cost.total - hit_cost}
    assert hit_embedding.savings == {} and hit_embedding.counterfactual_cost == 0
    # Over the ledger, the savings are net of every embedding: counterfactual - cost = savings.
    spent = sum((r.cost.total for r in rows if r.cost is not None), Decimal(0))
    without = sum((r.counterfactual_cost for r in rows if r.counterfactual_cost is not None), Decimal(0))
    saved = sum((v for r in rows for v in r.savings.values()), Decimal(0))
    assert saved == without - spent == miss.cost.total - first_cost - hit_cost


def test_a_provider_embedder_with_no_usage_is_counted_and_flagged(
    simulator_url: str, tmp_path: Path, embeddings_provider: tuple[str, EmbeddingsProvider]
) -> None:
    from thrifty.core.tokens.counter import TokenCounter

    url, _ = embeddings_provider
    with running_gateway(simulator_url, tmp_path, **provider_overrides(f"{url}/silent/v1")) as gateway:
        client = gpt(gateway)
        ask(client, FIRST)
        assert status(ask(client, PARAPHRASE)) == "semantic"
        rows = gateway.records(4)
    first_embedding, miss, hit_embedding, hit = by_role(rows)
    counter = TokenCounter()
    for row, question in ((first_embedding, FIRST), (hit_embedding, PARAPHRASE)):
        exact = counter.count_text(question, "text-embedding-3-small")
        assert not exact.approximate  # cl100k_base: thrifty's count is the provider's
        assert row.usage == Usage(input_tokens=exact.input_tokens)
        assert row.details["usage_estimated"] is True
        assert row.cost is not None and row.cost.total == expected_cost(row.usage, "text-embedding-3-small", row)
    assert hit.details["semantic_cache"]["embedding_usage_estimated"] is True
    assert miss.cost is not None and hit_embedding.cost is not None
    assert hit.savings == {"semantic_cache": miss.cost.total - hit_embedding.cost.total}


def test_an_unpriced_embedding_model_costs_none_never_zero(
    simulator_url: str, tmp_path: Path, embeddings_provider: tuple[str, EmbeddingsProvider]
) -> None:
    url, _ = embeddings_provider
    overrides = provider_overrides(f"{url}/usage/v1", model="house-embedder-v1")
    with running_gateway(simulator_url, tmp_path, **overrides) as gateway:
        client = gpt(gateway)
        ask(client, FIRST)
        assert status(ask(client, PARAPHRASE)) == "semantic"
        rows = gateway.records(4)
    first_embedding, miss, hit_embedding, hit = by_role(rows)
    for row in (first_embedding, hit_embedding):
        assert row.cost is None and "price_error" in row.details
        assert row.usage.input_tokens > 0
    assert first_embedding.savings == {}
    assert hit.details["semantic_cache"]["embedding_cost_usd"] is None
    assert hit.cost is not None and hit.cost.total == 0
    assert miss.cost is not None and hit.savings == {"semantic_cache": miss.cost.total}
