"""``thrifty.wrap``: the official SDK clients, unchanged for their users, running the pipeline
in-process -- priced, recorded, retried -- with no gateway in between."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest

import thrifty
from thrifty.core.pricing import PriceBook
from thrifty.core.usage import Usage
from thrifty.stores.ledger import open_ledger

HELLO = [{"role": "user", "content": "Say hello in-process."}]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[thrifty.Thrifty]:
    instance = thrifty.Thrifty(ledger=f"sqlite:///{tmp_path / 'ledger.db'}", journal_dir=tmp_path / "journal")
    yield instance
    instance.close()


def records(runtime: thrifty.Thrifty, tmp_path: Path, expected: int) -> list:  # type: ignore[type-arg]
    runtime.runtime.writer.flush(timeout=10)
    store = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        rows = sorted(store.records(limit=100), key=lambda r: r.id)
    finally:
        store.close()
    assert len(rows) == expected
    return rows


def test_sync_openai_client(runtime: thrifty.Thrifty, simulator_url: str, tmp_path: Path) -> None:
    client = runtime.wrap(
        openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), user="alice", feature="docs"
    )
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)  # type: ignore[arg-type]
    assert completion.choices[0].message.content
    streamed = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20, stream=True)  # type: ignore[arg-type]
    )
    assert all(chunk.usage is None for chunk in streamed)
    first, second = records(runtime, tmp_path, 2)
    usage = Usage.from_openai(completion.usage.model_dump())  # type: ignore[union-attr]
    assert first.usage == usage and second.usage == usage and second.stream
    assert (first.user, first.feature) == ("alice", "docs")
    expected = PriceBook().price(usage, "gpt-4o-mini", at=first.ts).cost.total
    assert first.cost is not None and first.cost.total == expected


def test_async_openai_client(runtime: thrifty.Thrifty, simulator_url: str, tmp_path: Path) -> None:
    client = runtime.wrap(openai.AsyncOpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))

    async def main() -> int:
        completion = await client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=15)  # type: ignore[arg-type]
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            max_tokens=15,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
        last = None
        async for chunk in stream:
            last = chunk
        assert last is not None and last.usage is not None
        return completion.usage.completion_tokens  # type: ignore[union-attr]

    output = asyncio.run(main())
    first, second = records(runtime, tmp_path, 2)
    assert first.usage.output_tokens == output == second.usage.output_tokens


def test_anthropic_clients_sync_and_async(runtime: thrifty.Thrifty, simulator_url: str, tmp_path: Path) -> None:
    sync = runtime.wrap(anthropic.Anthropic(base_url=simulator_url, api_key="sk-ant-test"), team="research")
    message = sync.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HELLO)  # type: ignore[arg-type]
    with sync.messages.stream(model="claude-haiku-4-5", max_tokens=20, messages=HELLO) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.usage.output_tokens == message.usage.output_tokens
    async_client = runtime.wrap(anthropic.AsyncAnthropic(base_url=simulator_url, api_key="sk-ant-test"))

    async def main() -> None:
        await async_client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HELLO)  # type: ignore[arg-type]

    asyncio.run(main())
    rows = records(runtime, tmp_path, 3)
    usage = Usage.from_anthropic(message.usage.model_dump())
    assert all(r.usage == usage for r in rows)
    assert rows[0].team == "research"


def test_retries_happen_in_process_too(runtime: thrifty.Thrifty, simulator_url: str, tmp_path: Path) -> None:
    httpx2.post(
        f"{simulator_url}/_simulator/faults", json={"model": "gpt-4o-mini", "fault": "429;retry-after=0.05", "times": 1}
    )
    client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
    (row,) = records(runtime, tmp_path, 1)
    assert [a.get("status") for a in row.details["attempts"]] == [429, 200]


def test_other_endpoints_pass_straight_through(runtime: thrifty.Thrifty, simulator_url: str, tmp_path: Path) -> None:
    client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
    assert any(model.id for model in client.models.list())
    records(runtime, tmp_path, 0)


def test_wrapping_something_else_is_a_clear_error(runtime: thrifty.Thrifty) -> None:
    with pytest.raises(TypeError, match="OpenAI or Anthropic SDK client"):
        runtime.wrap(object())
