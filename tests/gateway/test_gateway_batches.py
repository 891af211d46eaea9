"""OpenAI's Files and Batch API through the gateway, with the official SDK, against the simulator:
a batch completes with the callers' custom_ids, one ledger row per line at the batch rate (checked
against genai-prices' own batch prices), cache hits never sent, bad input files refused with line
numbers, another tenant's files and batches not found, a batch larger than a budget refused
whole, and a batch created before a restart completed after it, each line recorded once."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import httpx2
import openai
import orjson
import pytest

from tests.gateway.test_gateway_budgets import settled
from tests.support.gateway import RunningGateway, running_gateway
from thrifty.batch.job import BatchJob
from thrifty.core.ledger import LedgerRecord
from thrifty.stores.keys import open_keys

FAST = {"poll_interval_s": 0.05, "lease_s": 3}


def line(custom_id: str, content: str, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 20, "temperature": 0}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": {**body, **extra}}


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines)


def client(gateway: RunningGateway, key: str = "not-needed") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def submit(gpt: openai.OpenAI, lines: list[Any]) -> Any:
    uploaded = gpt.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    return gpt.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")


def wait(gpt: openai.OpenAI, batch_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = gpt.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled") or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def outputs(gpt: openai.OpenAI, file_id: str) -> dict[str, Any]:
    return {e["custom_id"]: e for e in map(orjson.loads, gpt.files.content(file_id).content.splitlines())}


def batch_rows(gateway: RunningGateway, batch_id: str, expected: int, timeout: float = 10) -> list[LedgerRecord]:
    rows = gateway.records(expected, timeout=timeout)
    return [r for r in rows if r.details.get("batch_id") == batch_id]


def genai_batch_price(record: LedgerRecord) -> Decimal:
    """The line's price at batch rates, from genai-prices directly (not thrifty's price book)."""
    usage = genai_prices.Usage(
        input_tokens=record.usage.input_tokens,
        cache_read_tokens=record.usage.cache_read_tokens,
        output_tokens=record.usage.output_tokens,
    )
    price = genai_prices.calc_price(
        usage,
        model_ref=record.requested_model,
        provider_id="openai",
        genai_request_timestamp=record.ts,
        price_context={"processing": "batch"},
    )
    return Decimal(price.total_price)


@pytest.fixture
def batching(simulator_url: str, tmp_path: Path) -> Iterator[RunningGateway]:
    with running_gateway(simulator_url, tmp_path, batch=FAST) as gateway:
        yield gateway


def test_a_batch_completes_priced_at_batch_rates_one_row_per_line(batching: RunningGateway) -> None:
    gpt = client(batching)
    lines = [line(f"q-{i}", f"Question number {i}: what is {i} squared?") for i in range(5)]
    lines.append(line("big", "Name a colour.", model="gpt-4o"))
    created = submit(gpt, lines)
    assert created.status == "validating"
    batch = wait(gpt, created.id)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None and batch.request_counts.completed == 6
    assert batch.output_file_id is not None
    got = outputs(gpt, batch.output_file_id)
    assert set(got) == {x["custom_id"] for x in lines}
    assert all(e["response"]["status_code"] == 200 for e in got.values())
    rows = batch_rows(batching, created.id, 6)
    assert sorted(r.details["custom_id"] for r in rows) == sorted(got)
    for row in rows:
        assert row.batch and row.cost is not None and row.cost.total > 0
        assert row.cost.total == genai_batch_price(row), row.details
        standard = row.counterfactual_cost
        assert standard is not None and row.savings["batch"] == standard - row.cost.total > 0
        body = got[row.details["custom_id"]]["response"]["body"]
        assert row.usage.output_tokens == body["usage"]["completion_tokens"]


def test_a_cached_line_is_answered_from_the_cache_and_never_sent(batching: RunningGateway) -> None:
    gpt = client(batching)
    question = "What is the capital of France, in one word?"
    sync = gpt.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}], max_tokens=20, temperature=0
    )
    created = submit(gpt, [line("cached", question), line("fresh", "What is the capital of Peru, in one word?")])
    batch = wait(gpt, created.id)
    assert batch.status == "completed"
    got = outputs(gpt, batch.output_file_id)
    assert got["cached"]["response"]["body"]["choices"][0]["message"]["content"] == sync.choices[0].message.content
    job = BatchJob.from_doc(batching_job(batching, created.id))
    sent = b"".join(
        httpx2.get(f"{batching.simulator_url}/v1/files/{g.provider_file_id}/content").content for g in job.groups
    )
    assert b'"fresh"' in sent and b'"cached"' not in sent  # what the simulator received
    rows = {r.details["custom_id"]: r for r in batch_rows(batching, created.id, 3)}
    assert rows["cached"].cache_status == "hit" and rows["cached"].cost is not None
    assert rows["cached"].cost.total == 0 and rows["cached"].savings["exact_cache"] > 0
    assert rows["fresh"].cost is not None and rows["fresh"].cost.total > 0


def batching_job(gateway: RunningGateway, batch_id: str) -> dict[str, Any]:
    from thrifty.stores.batches import BatchStore

    store = BatchStore(gateway.runtime.config.storage.local_cache_path())
    try:
        doc = store.job(batch_id, None)
    finally:
        store.close()
    assert doc is not None
    return doc


def test_a_bad_file_is_refused_with_line_numbers_and_nothing_is_queued(batching: RunningGateway) -> None:
    gpt = client(batching)
    wrong_url = {**line("c", "hi"), "url": "/v1/embeddings"}
    lines = [line("a", "hi"), b"{not json", line("b", "hi", model="gpt-9"), wrong_url, line("a", "again")]
    with pytest.raises(openai.BadRequestError) as refused:
        submit(gpt, lines)
    message = str(refused.value)
    for expected in ("line 2", "not parseable", "line 3", "gpt-9", "line 4", "/v1/embeddings", "line 5", "'a'"):
        assert expected in message
    assert gpt.batches.list().data == []
    batching.runtime.writer.flush(timeout=2)
    assert batching.records(0, timeout=0.2) == []


def test_a_stream_line_and_an_unsupported_endpoint_are_refused(batching: RunningGateway) -> None:
    gpt = client(batching)
    uploaded = gpt.files.create(file=("in.jsonl", io.BytesIO(jsonl([line("a", "hi", stream=True)]))), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="line 1: A batch line cannot stream"):
        gpt.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        gpt.batches.create(input_file_id=uploaded.id, endpoint="/v1/completions", completion_window="24h")


def test_files_and_batches_of_another_tenant_are_not_found(batching: RunningGateway) -> None:
    store = open_keys(batching.runtime.config.storage.ledger)
    try:
        _, mine = store.create(user=None, team=None, feature=None)
        _, theirs = store.create(user=None, team=None, feature=None)
    finally:
        store.close()
    batching.runtime.keys.load()
    me, them = client(batching, mine), client(batching, theirs)
    created = submit(me, [line("only", "Say hi.")])
    assert me.batches.retrieve(created.id).id == created.id
    with pytest.raises(openai.NotFoundError):
        them.batches.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        them.files.retrieve(created.input_file_id)
    with pytest.raises(openai.NotFoundError):
        them.files.content(created.input_file_id)
    with pytest.raises(openai.NotFoundError):
        them.batches.cancel(created.id)
    with pytest.raises(openai.NotFoundError):
        them.batches.create(
            input_file_id=created.input_file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert [b.id for b in them.batches.list().data] == []
    assert [b.id for b in me.batches.list().data] == [created.id]


def test_a_batch_larger_than_a_budget_is_refused_whole(simulator_url: str, tmp_path: Path) -> None:
    # 3 lines of at most 20 output tokens each fit $0.0001 at batch rates; 30 lines do not.
    budgets = {"limits": [{"scope": "global", "usd": "0.0001", "window": "day"}], "refresh_s": 0.2}
    with running_gateway(simulator_url, tmp_path, batch=FAST, budgets=budgets) as gateway:
        gpt = client(gateway)
        with pytest.raises(openai.RateLimitError, match="refused whole") as refused:
            submit(gpt, [line(f"q{i}", f"Question {i}?") for i in range(30)])
        assert "30 lines" in str(refused.value)
        assert gpt.batches.list().data == []
        batch = wait(gpt, submit(gpt, [line(f"q{i}", f"Small question {i}?") for i in range(3)]).id)
        assert batch.status == "completed"
        rows = batch_rows(gateway, batch.id, 3)
        assert len(rows) == 3
        (row,) = settled(gateway)
        assert Decimal(str(row["spent"])) == sum((r.cost.total for r in rows if r.cost is not None), Decimal(0))


def test_a_batch_created_before_a_restart_completes_after_it_each_line_once(tmp_path: Path) -> None:
    from tests.support.servers import ServerThread
    from thrifty.simulator import create_app
    from thrifty.simulator.config import SimulatorConfig

    simulator = ServerThread(create_app(SimulatorConfig(batch_completion_delay_s=1.0))).start()
    lines = [line(f"r{i}", f"Restart question {i}?") for i in range(4)]
    try:
        with running_gateway(simulator.url, tmp_path, batch=FAST) as first:
            gpt = client(first)
            created = submit(gpt, lines)
            deadline = time.monotonic() + 10
            while gpt.batches.retrieve(created.id).status != "in_progress":  # at the provider, not done
                assert time.monotonic() < deadline
                time.sleep(0.02)
        assert batch_rows_of(tmp_path, created.id) == []  # stopped before any result came
        with running_gateway(simulator.url, tmp_path, batch=FAST) as second:
            gpt = client(second)
            batch = wait(gpt, created.id)
            assert batch.status == "completed"
            assert set(outputs(gpt, batch.output_file_id)) == {x["custom_id"] for x in lines}
            rows = batch_rows(second, created.id, 4)
            assert sorted(r.details["custom_id"] for r in rows) == [f"r{i}" for i in range(4)]
        listed = httpx2.get(f"{simulator.url}/v1/batches").json()["data"]
        mine = [b for b in listed if (b.get("metadata") or {}).get("thrifty_batch", "").startswith(created.id)]
        assert len(mine) == 1  # submitted once, though two processes had it
        with running_gateway(simulator.url, tmp_path, batch=FAST) as third:  # and recorded once
            assert client(third).batches.retrieve(created.id).status == "completed"
            assert len(batch_rows(third, created.id, 5, timeout=0.5)) == 4
    finally:
        simulator.stop()


def batch_rows_of(home: Path, batch_id: str) -> list[LedgerRecord]:
    from thrifty.stores.ledger import open_ledger

    store = open_ledger(f"sqlite:///{home / 'ledger.db'}")
    try:
        return [r for r in store.records(limit=1000) if r.details.get("batch_id") == batch_id]
    finally:
        store.close()
