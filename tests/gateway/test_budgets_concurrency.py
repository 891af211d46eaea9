"""Budgets and rate limits that hold under concurrency: real processes, real Redis, real PostgreSQL.

Four ``thrifty serve`` processes share one Redis (budget counters, reservations, rate-limit
windows) and one PostgreSQL ledger, in front of a simulated upstream (its own process):

* 500 concurrent requests against a small USD budget: the settled spend never exceeds the budget
  by more than one request's maximum cost, every refused request got ``budget_exceeded``, and the
  ledger's sum equals the budget's counter, exactly;
* the same for a tokens-per-minute limit: what is admitted in any window stays within the limit;
* one process killed with SIGKILL while its calls are in flight: its reservations lapse with its
  lease and the budget is not permanently consumed.

And the single-process SQLite store passes the same concurrency test within one process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.budgets import clear_prefix, redis_namespace
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.processes import free_port, thrifty_process, wait_ready
from thrifty.config.budgets import BudgetsSpec
from thrifty.core.budgets import Budget, Window, budget_from_doc, usd_to_units
from thrifty.core.ledger import LedgerRecord
from thrifty.pipeline.budgets.status import budget_status
from thrifty.stores.budgets import open_budget_store
from thrifty.stores.ledger import open_ledger

BUDGET_USD = Decimal("0.002")
MAX_TOKENS = 50
# gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens. The prompts below
# are 16 tokens at most (exact count), so one call may cost 16 x 0.15 + 50 x 0.60 = 32.4 micro-dollars.
MAX_CALL_USD = (Decimal("0.15") * 16 + Decimal("0.60") * MAX_TOKENS) / 1_000_000
TPM_LIMIT = 2_000
TPM_SHORT_LIMIT = 600
TPM_SHORT_WINDOW = 2


@dataclass
class Cluster:
    urls: list[str]
    processes: list[subprocess.Popen[bytes]]
    redis_url: str
    prefix: str
    ledger_url: str
    simulator: str
    home: Path

    def logs(self) -> str:
        """What the processes logged, and what waits in their journals (for a failure's message)."""
        parts = [f"{log.name}: {log.read_text()[-1500:]}" for log in sorted(self.home.glob("*.log"))]
        parts += [f"{path.relative_to(self.home)} {path.stat().st_size} bytes" for path in self.home.glob("journal*/*")]
        return "\n".join(parts)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[Cluster]:
    import psycopg

    home = tmp_path_factory.mktemp("cluster")
    name = f"thrifty_test_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    ledger_url = f"{postgres_server.rpartition('/')[0]}/{name}"
    open_ledger(ledger_url).close()  # migrate once, before four processes race to
    redis_url, prefix = redis_namespace()
    simulator_config = home / "simulator.yaml"
    simulator_config.write_text(yaml.safe_dump({"faults": {"gpt-4o": "delay=4000"}}))
    sim_port = free_port()
    sim_log = home / "simulator.log"
    processes = [thrifty_process("simulate", "--port", str(sim_port), "--config", str(simulator_config), log=sim_log)]
    simulator = f"http://127.0.0.1:{sim_port}"
    try:
        wait_ready(simulator, processes[0], sim_log, "/_simulator/health")
        urls = []
        for n in range(4):
            config = {
                "storage": {"ledger": ledger_url, "journal_dir": str(home / f"journal{n}"), "redis": redis_url},
                "retry": {"attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "attempt_timeout_s": 30},
                "providers": {"openai": {"kind": "openai", "base_url": f"{simulator}/v1"}},
                "models": [
                    {"name": "gpt-4o-mini", "provider": "openai"},
                    {"name": "gpt-4o", "provider": "openai"},
                    {"name": "text-embedding-3-small", "provider": "openai"},
                ],
                "cache": {"exact": {"enabled": False}},
                "budgets": {
                    "key_prefix": prefix,
                    "lease_s": 2,
                    "refresh_s": 0.5,
                    "limits": [
                        {"scope": "feature", "value": "budgeted", "usd": str(BUDGET_USD), "window": "day"},
                        {"scope": "feature", "value": "killtest", "tokens": 700, "window": "day"},
                        {"scope": "feature", "value": "mixed", "usd": str(BUDGET_USD), "window": "day"},
                    ],
                },
                "rate_limits": {
                    "max_wait_s": 0,
                    "limits": [
                        {"scope": "team", "value": "tpm", "tokens_per_minute": TPM_LIMIT},
                        {
                            "scope": "team",
                            "value": "tpm-short",
                            "tokens_per_minute": TPM_SHORT_LIMIT,
                            "window_s": TPM_SHORT_WINDOW,
                        },
                    ],
                },
            }
            path = home / f"gateway{n}.yaml"
            path.write_text(yaml.safe_dump(config))
            port = free_port()
            log = home / f"gateway{n}.log"
            processes.append(
                thrifty_process("serve", "--config", str(path), "--port", str(port), "--log-level", "warning", log=log)
            )
            urls.append(f"http://127.0.0.1:{port}")
        for n, url in enumerate(urls):
            wait_ready(url, processes[n + 1], home / f"gateway{n}.log")
        yield Cluster(urls, processes[1:], redis_url, prefix, ledger_url, simulator, home)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        clear_prefix(redis_url, prefix)
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


PROMPTS = [f"Tell me about the number {n}." for n in range(1000)]


async def _fire(
    urls: list[str], count: int, headers: dict[str, str], model: str = "gpt-4o-mini"
) -> list[tuple[int, Any]]:
    """``count`` requests at once, spread over the gateways; (status, JSON body) of each."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(n: int) -> tuple[int, Any]:
            body = {
                "model": model,
                "messages": [{"role": "user", "content": PROMPTS[n % len(PROMPTS)]}],
                "max_tokens": MAX_TOKENS,
            }
            async with session.post(
                f"{urls[n % len(urls)]}/v1/chat/completions", json=body, headers=headers
            ) as response:
                payload = await response.json(content_type=None)
                payload["_request_id"] = response.headers.get("x-thrifty-request-id")
                return response.status, payload

        return await asyncio.gather(*(one(n) for n in range(count)))


def _status(redis_url: str, prefix: str, budgets: list[Budget]) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        store = open_budget_store(redis_url, prefix=prefix)
        try:
            return [row.as_json() for row in await budget_status(store, budgets)]
        finally:
            await store.close()

    return asyncio.run(read())


def _ledger_rows(ledger_url: str, expected: int, match: Any, timeout: float = 60) -> list[LedgerRecord]:
    deadline = time.monotonic() + timeout
    store = open_ledger(ledger_url)
    try:
        while True:
            rows = [r for r in store.records(limit=100_000) if match(r)]
            if len(rows) >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)
    finally:
        store.close()


def _budget(scope: str, value: str, **limit: Any) -> Budget:
    doc = {"scope": scope, "value": value, "window": "day", "timezone": "UTC", "source": "config", **limit}
    return budget_from_doc(doc)


def _check_budget_invariants(
    results: list[tuple[int, Any]], rows: list[LedgerRecord], spent: Decimal, reserved: Any
) -> None:
    statuses = [status for status, _ in results]
    refused = [body for status, body in results if status != 200]
    assert statuses.count(200) > 10 and refused, "the budget should admit some calls and refuse others"
    assert all(body["error"]["type"] == "budget_exceeded" for body in refused), {b["error"]["type"] for b in refused}
    assert all("feature budgeted" in body["error"]["message"] for body in refused)
    # Never over the budget by more than one call's maximum cost (with reservations: not at all).
    assert spent <= BUDGET_USD + MAX_CALL_USD
    assert spent <= BUDGET_USD
    assert str(reserved) == "0"
    calls = [r for r in rows if r.status != "budget_alert"]
    missing = {body["_request_id"] for _, body in results} - {r.request_id for r in calls}
    assert len(calls) == len(results), f"no ledger row for {sorted(missing)}"
    ledger_sum = sum((r.cost.total for r in calls if r.cost is not None), Decimal(0))
    assert ledger_sum == spent  # exactly: the counter holds the ledger's own figures
    assert sum(1 for r in calls if r.status == "ok") == statuses.count(200)


def test_four_processes_share_one_usd_budget_under_500_concurrent_calls(cluster: Cluster) -> None:
    results = asyncio.run(_fire(cluster.urls, 500, {"x-thrifty-feature": "budgeted"}))
    budget = _budget("feature", "budgeted", unit="usd", limit=str(BUDGET_USD))
    rows = _ledger_rows(cluster.ledger_url, 500, lambda r: r.feature == "budgeted" and r.status != "budget_alert")
    assert len(rows) == 500, cluster.logs()
    status = _settled_status(cluster, budget)
    _check_budget_invariants(results, rows, Decimal(status["spent"]), status["reserved"])
    assert Decimal(status["spent"]) > BUDGET_USD / 2  # and the budget was really used


async def _fire_mixed(urls: list[str], count: int, headers: dict[str, str]) -> list[tuple[int, Any]]:
    """Chat calls with n up to 8, streams and embeddings at once, spread over the gateways."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(n: int) -> tuple[int, Any]:
            url = urls[n % len(urls)]
            kind = n % 3
            if kind == 2:
                embed = {"model": "text-embedding-3-small", "input": [PROMPTS[n] * 40, PROMPTS[n + 1]]}
                async with session.post(f"{url}/v1/embeddings", json=embed, headers=headers) as response:
                    return response.status, await response.json(content_type=None)
            body: dict[str, Any] = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": PROMPTS[n % len(PROMPTS)]}],
                "max_tokens": MAX_TOKENS,
            }
            if kind == 0:
                body["n"] = 1 + n % 8
            else:
                body.update(stream=True, stream_options={"include_usage": True})
            async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as response:
                if response.status == 200 and body.get("stream"):
                    await response.read()
                    return 200, {}
                return response.status, await response.json(content_type=None)

        return await asyncio.gather(*(one(n) for n in range(count)))


def test_n_choices_streams_and_embeddings_share_one_budget_across_four_processes(cluster: Cluster) -> None:
    results = asyncio.run(_fire_mixed(cluster.urls, 300, {"x-thrifty-feature": "mixed"}))
    refused = [body for status, body in results if status != 200]
    assert refused and all(body["error"]["type"] == "budget_exceeded" for body in refused), refused[:3]
    budget = _budget("feature", "mixed", unit="usd", limit=str(BUDGET_USD))
    rows = _ledger_rows(cluster.ledger_url, 300, lambda r: r.feature == "mixed" and r.status != "budget_alert")
    assert len(rows) == 300, cluster.logs()
    status = _settled_status(cluster, budget)
    spent = Decimal(status["spent"])
    assert spent <= BUDGET_USD  # reservations cover every choice and every endpoint: never over
    assert spent == sum((r.cost.total for r in rows if r.cost is not None), Decimal(0))
    kinds = {r.details.get("endpoint", "chat") for r in rows if r.status == "ok"}
    assert kinds == {"chat", "embeddings"}


def _settled_status(cluster: Cluster, budget: Budget) -> dict[str, Any]:
    """The budget's status once no reservation is in flight (or after 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        (status,) = _status(cluster.redis_url, cluster.prefix, [budget])
        if status["reserved"] == "0" or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def _admitted_weights(rows: list[LedgerRecord]) -> list[tuple[float, int]]:
    return sorted(
        (r.details["rate_limit_admitted_at"], r.usage.input_tokens + MAX_TOKENS) for r in rows if r.status == "ok"
    )


def test_a_tokens_per_minute_limit_holds_across_four_processes(cluster: Cluster) -> None:
    results = asyncio.run(_fire(cluster.urls, 500, {"x-thrifty-team": "tpm"}))
    refused = [body for status, body in results if status != 200]
    assert refused and all(body["error"]["code"] == "rate_limit_exceeded" for body in refused)
    rows = _ledger_rows(cluster.ledger_url, 500, lambda r: r.team == "tpm")
    admitted = _admitted_weights(rows)
    assert len(admitted) == sum(1 for status, _ in results if status == 200)
    # Everything ran inside one minute: what was admitted is within the limit, and close to it.
    assert admitted[-1][0] - admitted[0][0] < 60
    total = sum(weight for _, weight in admitted)
    assert TPM_LIMIT - 2 * (16 + MAX_TOKENS) < total <= TPM_LIMIT


def test_a_short_window_holds_in_every_window_while_load_goes_on(cluster: Cluster) -> None:
    async def waves() -> list[tuple[int, Any]]:
        results: list[tuple[int, Any]] = []
        for _ in range(12):  # 6 seconds of load, 3 windows
            results += await _fire(cluster.urls, 40, {"x-thrifty-team": "tpm-short"})
            await asyncio.sleep(0.5)
        return results

    results = asyncio.run(waves())
    rows = _ledger_rows(cluster.ledger_url, len(results), lambda r: r.team == "tpm-short")
    admitted = _admitted_weights(rows)
    assert admitted[-1][0] - admitted[0][0] > 2 * TPM_SHORT_WINDOW
    start = 0
    in_window = 0
    for at, weight in admitted:  # every window of TPM_SHORT_WINDOW seconds ending at an admission
        in_window += weight
        while admitted[start][0] <= at - TPM_SHORT_WINDOW:
            in_window -= admitted[start][1]
            start += 1
        assert in_window <= TPM_SHORT_LIMIT


def test_a_killed_process_leaves_no_reservation_behind(cluster: Cluster) -> None:
    budget = _budget("feature", "killtest", unit="tokens", limit=700)
    victim = cluster.urls[0]

    async def scenario() -> tuple[list[Any], dict[str, Any], tuple[int, Any]]:
        # Ten slow calls (the simulator delays gpt-4o by 4 s) on one process reserve ~660 tokens of 700.
        slow = asyncio.ensure_future(_fire([victim], 10, {"x-thrifty-feature": "killtest"}, model="gpt-4o"))
        await asyncio.sleep(1.0)
        (held,) = await asyncio.to_thread(_status, cluster.redis_url, cluster.prefix, [budget])
        # Another process must refuse: the budget is held by calls in flight.
        (refused,) = await _fire(cluster.urls[1:2], 1, {"x-thrifty-feature": "killtest"})
        cluster.processes[0].send_signal(signal.SIGKILL)
        results = await asyncio.gather(slow, return_exceptions=True)
        return [held, refused], {"results": results}, refused

    (held, refused), _, _ = asyncio.run(scenario())
    assert held["reserved"] >= 600 and held["spent"] == 0
    assert refused[0] == 429 and refused[1]["error"]["type"] == "budget_exceeded"
    assert "reserved by calls in flight" in refused[1]["error"]["message"]
    cluster.processes[0].wait(timeout=10)
    # The dead process's lease (2 s) lapses; the next operation of a live process releases its reservations.
    deadline = time.monotonic() + 15
    while True:
        (status,) = _status(cluster.redis_url, cluster.prefix, [budget])
        if status["reserved"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status["reserved"] == 0 and status["spent"] == 0
    (after,) = asyncio.run(_fire(cluster.urls[1:2], 1, {"x-thrifty-feature": "killtest"}, model="gpt-4o"))
    assert after[0] == 200, after


def test_the_sqlite_store_holds_the_same_budget_within_one_process(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "feature", "value": "budgeted", "usd": str(BUDGET_USD), "window": "day"}]
    with running_gateway(
        simulator_url, tmp_path, budgets={"limits": limits}, cache={"exact": {"enabled": False}}
    ) as gateway:
        results = asyncio.run(_fire([gateway.url], 500, {"x-thrifty-feature": "budgeted"}))
        rows = _records(gateway, 500)
        budget = _budget("feature", "budgeted", unit="usd", limit=str(BUDGET_USD))
        limits_rt = gateway.runtime.limits
        assert limits_rt is not None and limits_rt.store.url.startswith("sqlite:///")

        async def read() -> dict[str, Any]:
            store = open_budget_store(limits_rt.store.url)
            try:
                (row,) = await budget_status(store, [budget])
                return row.as_json()
            finally:
                await store.close()

        deadline = time.monotonic() + 10
        while True:
            status = asyncio.run(read())
            if status["reserved"] == "0" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        _check_budget_invariants(results, rows, Decimal(status["spent"]), status["reserved"])


def _records(gateway: RunningGateway, expected: int) -> list[LedgerRecord]:
    deadline = time.monotonic() + 30
    while True:
        rows = gateway.records(expected, timeout=2)
        if sum(1 for r in rows if r.status != "budget_alert") >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_window_and_units_used_above_are_what_the_budget_says() -> None:
    assert usd_to_units(BUDGET_USD) == 2_000_000_000
    assert Window("day").label == "day"


def test_two_gateways_on_one_directory_hold_one_budget_across_chat_n_streams_and_embeddings(
    simulator_url: str, tmp_path: Path
) -> None:
    """The same, with nothing shared but one directory: the SQLite ledger and the SQLite budget
    store beside it, under two ``thrifty serve`` processes."""
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    open_ledger(ledger).close()  # migrate once, before two processes race to
    urls, processes = [], []
    try:
        for n in range(2):
            config = {
                "storage": {"ledger": ledger, "journal_dir": str(tmp_path / f"journal{n}")},
                "providers": {"openai": {"kind": "openai", "base_url": f"{simulator_url}/v1"}},
                "models": [
                    {"name": "gpt-4o-mini", "provider": "openai"},
                    {"name": "text-embedding-3-small", "provider": "openai"},
                ],
                "cache": {"exact": {"enabled": False}},
                "budgets": {
                    "refresh_s": 0.5,
                    "limits": [{"scope": "feature", "value": "mixed", "usd": str(BUDGET_USD), "window": "day"}],
                },
            }
            path = tmp_path / f"gateway{n}.yaml"
            path.write_text(yaml.safe_dump(config))
            port = free_port()
            log = tmp_path / f"gateway{n}.log"
            processes.append(thrifty_process("serve", "--config", str(path), "--port", str(port), log=log))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process, n in zip(urls, processes, range(2), strict=True):
            wait_ready(url, process, tmp_path / f"gateway{n}.log")
        results = asyncio.run(_fire_mixed(urls, 200, {"x-thrifty-feature": "mixed"}))
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
    refused = [body for status, body in results if status != 200]
    assert refused and all(body["error"]["type"] == "budget_exceeded" for body in refused), refused[:3]
    rows = _ledger_rows(ledger, 200, lambda r: r.feature == "mixed" and r.status != "budget_alert")
    assert len(rows) == 200
    budget = _budget("feature", "mixed", unit="usd", limit=str(BUDGET_USD))
    (status,) = _status(f"sqlite:///{tmp_path / 'budgets.db'}", BudgetsSpec().key_prefix, [budget])
    assert status["reserved"] == "0"
    spent = Decimal(status["spent"])
    assert spent <= BUDGET_USD
    assert spent == sum((r.cost.total for r in rows if r.cost is not None), Decimal(0))
