"""A gateway killed with SIGKILL under 300 concurrent streams: every call that reached the
provider is in the ledger (``ok`` if it finished, ``interrupted`` with its lower-bound cost if
not), written by the gateway's sidecar from the journal's intents once the gateway is gone."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx2
import pytest
import yaml

from tests.support.processes import free_port, thrifty_process, wait_ready
from thrifty.core.ledger import LedgerRecord
from thrifty.stores.ledger import open_ledger

STREAMS = 300


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    """A simulator of its own (its request counts are this test's alone), streaming slowly: one
    event every 100 ms, so no stream is near its end when the gateway is killed."""
    config = tmp_path / "simulator.yaml"
    config.write_text(yaml.safe_dump({"faults": {"gpt-4o-mini": "chunk-delay=100"}}))
    port = free_port()
    log = tmp_path / "simulator.log"
    process = thrifty_process("simulate", "--port", str(port), "--config", str(config), log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log, "/_simulator/health")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


async def _open_streams(url: str, calls: range, opened: list[int], source: str) -> list[BaseException | None]:
    """The streamed calls numbered ``calls``, from address ``source``; each counts itself in ``opened`` once the
    gateway answered 200 (it does once the provider did), then reads until the connection dies."""
    connector = aiohttp.TCPConnector(limit=0, local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one(n: int) -> None:
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Count slowly to {n}."}],
                "max_tokens": 200,
                "stream": True,
            }
            async with session.post(f"{url}/v1/chat/completions", json=body, headers={"x-thrifty-user": f"u{n}"}) as r:
                assert r.status == 200
                opened.append(n)
                async for _ in r.content:
                    pass

        return await asyncio.gather(*(one(n) for n in calls), return_exceptions=True)


def _rows(ledger_url: str) -> list[LedgerRecord]:
    store = open_ledger(ledger_url)
    try:
        return store.records(limit=10 * STREAMS)
    finally:
        store.close()


def test_sigkill_under_concurrent_streams_leaves_a_row_for_every_call_that_reached_the_provider(
    simulator: str, tmp_path: Path
) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = {
        "storage": {"ledger": ledger_url, "journal_dir": str(tmp_path / "journal")},
        "retry": {"attempts": 1, "attempt_timeout_s": 30},
        "providers": {"openai": {"kind": "openai", "base_url": f"{simulator}/v1"}},
        "models": [{"name": "gpt-4o-mini", "provider": "openai"}],
        "cache": {"exact": {"enabled": False}},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "gateway.log"
    gateway = thrifty_process("serve", "--config", str(path), "--port", str(port), "--log-level", "warning", log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, gateway, log, "/readyz")
        opened: list[int] = []

        async def scenario() -> list[BaseException | None]:
            # From two addresses: the gateway takes at most 256 connections from one client.
            half = STREAMS // 2
            load = asyncio.gather(
                _open_streams(url, range(half), opened, "127.0.0.1"),
                _open_streams(url, range(half, STREAMS), opened, "127.0.0.2"),
            )
            deadline = time.monotonic() + 60
            while len(opened) < STREAMS and not load.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            gateway.send_signal(signal.SIGKILL)  # every stream in flight, none near its end
            first, second = await load
            return first + second

        outcomes = asyncio.run(scenario())
        gateway.wait(timeout=10)
        assert len(opened) == STREAMS, ({repr(o)[:200] for o in outcomes}, log.read_text()[-3000:])
        stats = httpx2.get(f"{simulator}/_simulator/stats").json()
        reached = stats["by_path"]["/v1/chat/completions"]
        assert reached == STREAMS

        # The gateway's sidecar sees it gone, replays its journal and stops.
        deadline = time.monotonic() + 60
        rows = _rows(ledger_url)
        while len(rows) < reached and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = _rows(ledger_url)
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
    assert len(rows) == reached, f"{reached - len(rows)} of {reached} calls that reached the provider have no row"
    assert len({r.user for r in rows}) == STREAMS  # one row a call: none twice, none missing
    assert {r.status for r in rows} <= {"ok", "interrupted"}
    interrupted = [r for r in rows if r.status == "interrupted"]
    assert len(interrupted) > STREAMS // 2  # the streams were slow: most were still going
    for row in interrupted:
        assert row.stream and row.served_model == "gpt-4o-mini" and row.provider == "openai"
        assert row.details["cost_lower_bound"] is True
        assert row.usage.input_tokens > 0 and row.usage.output_tokens == 0
        assert row.cost is not None and row.cost.total > 0  # its input, at the model's price: not $0
    assert not list((tmp_path / "journal").glob("*.jsonl"))  # everything replayed
