"""Budgets and rate limits: what they cost, measured in one run.

Run: .venv/bin/python bench/budgets.py [--quick] [--redis redis://127.0.0.1:6379/11]

1. The stores alone: reserve then settle a call charged to two budgets (a user's and a global
   one), with SQLite (one file, one process) and with Redis; for Redis, the round trips each
   operation makes (counted on the client's connections).
2. The gateway's added latency: three ``thrifty serve`` processes in front of the same mock
   upstream, hit in alternation on one keep-alive connection each: budgets and rate limits off;
   on with the SQLite store; on with Redis. Each "on" gateway checks a USD budget per user, a global
   USD budget, a tokens budget per team, and requests- and tokens-per-minute limits per user
   (limits high enough never to refuse). Every call is priced and recorded in all three.

Every figure printed comes from this run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = REPO / ".venv" / "bin"
sys.path.insert(0, str(HERE / "gateway"))
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
from procs import Processes, free_port, wait_ready  # noqa: E402

from _util import fmt_time, per_call_seconds  # noqa: E402
from thrifty.stores.budgets import Line, line_key  # noqa: E402


def _lines(n: int, amount: int, budgets: int = 2) -> list[Line]:
    lines = [
        Line(line_key("user:*:day:usd", f"user{n % 50}", "day:2026-01-01"), amount, 10**18, ttl_s=86_400),
        Line(line_key("global:*:day:usd", "*", "day:2026-01-01"), amount, 10**18, ttl_s=86_400),
    ]
    return lines[:budgets]


def bench_sqlite(calls: int, budgets: int) -> float:
    """In a file on the project's disk, checkpointed in a thread every 500 calls as the gateway's
    heartbeat does (every few seconds)."""
    import threading

    from thrifty.stores.budgets.sqlite import SQLiteBudgetStore

    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        store = SQLiteBudgetStore(Path(tmp) / "budgets.db")
        counter = iter(range(10**9))

        def reserve_and_settle() -> None:
            n = next(counter)
            if n % 500 == 0:
                threading.Thread(target=store.checkpoint_sync).start()
            reservation = f"r{n}"
            assert store.reserve_sync(reservation, _lines(n, 32_400_000, budgets)) is None
            store.settle_sync(reservation, _lines(n, 13_950_000, budgets))

        seconds = per_call_seconds(reserve_and_settle, calls=calls)
        asyncio.run(store.close())
        return seconds


def bench_redis(url: str, calls: int) -> dict[str, Any]:
    from redis.asyncio import connection

    from thrifty.stores.budgets.redis import RedisBudgetStore

    sent = {"n": 0}
    original = connection.AbstractConnection.send_packed_command

    async def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent["n"] += 1
        await original(self, command, check_health)

    async def run() -> dict[str, Any]:
        prefix = f"bench:{time.time_ns()}:"
        store = RedisBudgetStore(url, prefix=prefix)
        await store.reserve("warm", _lines(0, 1))  # loads the scripts
        await store.settle("warm", _lines(0, 1))
        await store.release("warm")
        connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        try:
            samples, reserve_trips, settle_trips = [], [], []
            for n in range(calls):
                began = time.perf_counter()
                before = sent["n"]
                assert await store.reserve(f"r{n}", _lines(n, 32_400_000)) is None
                middle = sent["n"]
                await store.settle(f"r{n}", _lines(n, 13_950_000))
                samples.append(time.perf_counter() - began)
                reserve_trips.append(middle - before)
                settle_trips.append(sent["n"] - middle)
        finally:
            connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
            keys = [k async for k in store.client.scan_iter(match=prefix + "*", count=1000)]
            if keys:
                await store.client.delete(*keys)
            await store.close()
        samples.sort()
        return {
            "median": statistics.median(samples),
            "p99": samples[int(len(samples) * 0.99) - 1],
            "reserve_round_trips": statistics.mean(reserve_trips),
            "settle_round_trips": statistics.mean(settle_trips),
        }

    return asyncio.run(run())


def gateway_config(upstream: str, work: Path, name: str, store: str | None) -> Path:
    home = work / name
    home.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1"},
        "storage": {"ledger": f"sqlite:///{home / 'ledger.db'}"},
        "providers": {"mock": {"kind": "openai-compatible", "base_url": f"{upstream}/v1", "api_key_env": "BENCH_KEY"}},
        "models": [{"name": "gpt-4o-mini", "provider": "mock"}],
        "cache": {"exact": {"enabled": False}},
        "rate_limits": {"provider_pacing": False},
    }
    if store is not None:
        config["budgets"] = {
            "store": store,
            "key_prefix": f"bench:{name}:{time.time_ns()}:",
            "limits": [
                {"scope": "user", "usd": "1000", "window": "day"},
                {"scope": "global", "usd": "100000", "window": "month"},
                {"scope": "team", "tokens": 10**12, "window": "rolling", "seconds": 3600},
            ],
        }
        config["rate_limits"] = {
            "provider_pacing": False,
            "limits": [{"scope": "user", "requests_per_minute": 10**8, "tokens_per_minute": 10**12}],
        }
    path = home / "thrifty.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def bench_gateway(redis_url: str, requests: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        procs = Processes(work)
        try:
            upstream_port = free_port()
            upstream = procs.start(
                "upstream",
                [str(VENV_BIN / "python"), str(HERE / "gateway" / "mock_upstream.py"), "--port", str(upstream_port)],
                "1",
            )
            wait_ready(upstream, upstream_port, "/healthz", 30)
            upstream_url = f"http://127.0.0.1:{upstream_port}"
            urls = {}
            for name, store in (("off", None), ("sqlite", f"sqlite:///{work / 'budgets.db'}"), ("redis", redis_url)):
                port = free_port()
                cmd = [
                    str(VENV_BIN / "thrifty"),
                    "serve",
                    "--config",
                    str(gateway_config(upstream_url, work, name, store)),
                ]
                proc = procs.start(
                    f"gateway-{name}", [*cmd, "--port", str(port), "--log-level", "warning"], "0", {"BENCH_KEY": "x"}
                )
                wait_ready(proc, port, "/readyz", 60)
                urls[name] = f"http://127.0.0.1:{port}"
            headers = {
                name: {**loadgen.HEADERS, "x-thrifty-user": "alice", "x-thrifty-team": "search"} for name in urls
            }
            return loadgen.sequential(urls, requests, warmup=200, headers=headers)
        finally:
            procs.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11", help="a Redis the benchmark may write to")
    args = parser.parse_args()
    calls = 300 if args.quick else 3000
    requests = 300 if args.quick else 3000

    print("== the stores: reserve + settle of a call charged to two budgets")
    for budgets in (1, 2):
        sqlite_s = bench_sqlite(calls, budgets)
        print(
            f"SQLite (one file, WAL), {budgets} budget(s): reserve + settle {fmt_time(sqlite_s)} per call "
            f"(median of 7 runs of {calls})"
        )
    redis = bench_redis(args.redis, calls)
    print(
        f"Redis ({args.redis})  reserve + settle: median {fmt_time(redis['median'])}, p99 {fmt_time(redis['p99'])}; "
        f"round trips: reserve {redis['reserve_round_trips']:.2f}, settle {redis['settle_round_trips']:.2f}"
    )

    print("\n== the gateway: sequential requests, one connection each, in alternation")
    latencies = bench_gateway(args.redis, requests)
    base_median, base_p99 = statistics.median(latencies["off"]), loadgen.percentile(latencies["off"], 99)
    for name, values in latencies.items():
        median = statistics.median(values)
        p99 = loadgen.percentile(values, 99)
        extra = (
            "" if name == "off" else f"  (+{fmt_time(median - base_median)} median, +{fmt_time(p99 - base_p99)} p99)"
        )
        print(f"budgets + rate limits {name:<7} median {fmt_time(median)}, p99 {fmt_time(p99)}{extra}")


if __name__ == "__main__":
    main()
