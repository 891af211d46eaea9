"""How evenly ``thrifty serve --workers N`` spreads requests over its workers: one listening socket
shared by all (``--listen shared``, what thrifty does) against a socket of each worker's own with
SO_REUSEPORT (``--listen reuseport``), measured in the same run, alternating.

  .venv/bin/python bench/gateway/workers_balance.py                 # 2 workers, ~2 min
  .venv/bin/python bench/gateway/workers_balance.py --workers 4 --seconds 8 --rounds 3

Every answer names its worker (``x-thrifty-worker: PID``); the load counts answers per worker in
two shapes of traffic:

- ``keep-alive``: ``--connections`` clients, each on one connection it keeps, one request at a time
  (SDKs with a pool, a load balancer's upstream connections). A connection stays with the worker
  that accepted it, so what is measured is how the connections were spread.
- ``new-conn``: the same clients, a new connection for every request (clients without a pool).

For each: the busiest worker's share of the answers over the fair share (1/N; 1.00 is even), the
spread of the per-worker counts (max/min), and the answers per second (on a machine this small
the load generator, the mock upstream and the workers share the cores, so that column compares the
two modes with each other, not with anything else). The upstream is bench/gateway/mock_upstream.py;
the gateway config is bench/gateway/thrifty.yaml (pricing and the SQLite ledger on).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from bench._util import free_port  # noqa: E402
from bench.gateway.loadgen import BODY, CHAT_PATH  # noqa: E402

VENV_BIN = Path(sys.executable).parent


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


async def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url} exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready: {log.read_text()[-2000:]}")


async def _load(url: str, connections: int, seconds: float, keep_alive: bool) -> tuple[Counter[str], int, float]:
    """Answers per worker pid, errors, and seconds taken."""
    counts: Counter[str] = Counter()
    errors = 0
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    if not keep_alive:
        headers["connection"] = "close"
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        nonlocal errors
        connector = aiohttp.TCPConnector(limit=1, force_close=not keep_alive)
        async with aiohttp.ClientSession(connector=connector) as session:
            while time.monotonic() < stop_at:
                try:
                    async with session.post(url + CHAT_PATH, data=BODY, headers=headers) as response:
                        await response.read()
                        if response.status == 200:
                            counts[response.headers.get("x-thrifty-worker", "?")] += 1
                        else:
                            errors += 1
                except (aiohttp.ClientError, OSError):
                    errors += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    return counts, errors, time.monotonic() - started


def _figures(counts: Counter[str], workers: int) -> tuple[float, float]:
    answered = sum(counts.values())
    per_worker = [counts.get(pid, 0) for pid in counts] + [0] * max(0, workers - len(counts))
    busiest = max(per_worker) / answered * workers if answered else float("nan")
    spread = max(per_worker) / min(per_worker) if min(per_worker) else float("inf")
    return busiest, spread


async def _run(args: argparse.Namespace, work: Path) -> int:
    upstream_port, gateway_port = free_port(), free_port()
    upstream = _start(
        [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(upstream_port)], work / "upstream.log"
    )
    text = (HERE / "thrifty.yaml").read_text()
    text = text.replace("http://127.0.0.1:19100", f"http://127.0.0.1:{upstream_port}")
    text = text.replace("/tmp/thrifty-bench/ledger.db", str(work / "ledger.db"))
    config = work / "thrifty.yaml"
    config.write_text(text)
    env = {"THRIFTY_BENCH_UPSTREAM_KEY": "sk-mock", "THRIFTY_HOME": str(work / "home")}
    results: dict[tuple[str, str], list[tuple[float, float, float, int]]] = {}
    try:
        await _wait_ready(f"http://127.0.0.1:{upstream_port}/healthz", upstream, work / "upstream.log")
        for round_ in range(args.rounds):
            for mode in ("shared", "reuseport") if round_ % 2 == 0 else ("reuseport", "shared"):
                log = work / f"gateway-{mode}-{round_}.log"
                cmd = [str(VENV_BIN / "thrifty"), "serve", "--config", str(config), "--port", str(gateway_port)]
                cmd += ["--workers", str(args.workers), "--listen", mode, "--no-access-log"]
                gateway = _start(cmd, log, env)
                url = f"http://127.0.0.1:{gateway_port}"
                try:
                    await _wait_ready(url + "/readyz", gateway, log)
                    await _load(url, args.connections, 1.0, True)  # warm-up
                    for shape, keep_alive in (("keep-alive", True), ("new-conn", False)):
                        counts, errors, took = await _load(url, args.connections, args.seconds, keep_alive)
                        busiest, spread = _figures(counts, args.workers)
                        rate = sum(counts.values()) / took
                        results.setdefault((mode, shape), []).append((busiest, spread, rate, errors))
                        print(
                            f"round {round_ + 1} {mode:9} {shape:10} busiest {busiest:.2f}x fair, "
                            f"max/min {spread:.2f}, {rate:,.0f} answers/s, {errors} errors, per worker "
                            f"{sorted(counts.values(), reverse=True)}",
                            flush=True,
                        )
                finally:
                    status = _stop(gateway)
                    if status != 0:
                        print(f"  gateway exited {status}; log: {log}", flush=True)
    finally:
        _stop(upstream)
    print()
    print(f"{args.workers} workers, {args.connections} clients, {args.rounds} rounds of {args.seconds:g} s (medians)")
    print(f"{'mode':10} {'traffic':11} {'busiest/fair':>13} {'max/min':>8} {'answers/s':>10} {'errors':>7}")
    for (mode, shape), rows in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        busiest = statistics.median(r[0] for r in rows)
        spread = statistics.median(r[1] for r in rows)
        rate = statistics.median(r[2] for r in rows)
        errors = sum(r[3] for r in rows)
        print(f"{mode:10} {shape:11} {busiest:13.2f} {spread:8.2f} {rate:10,.0f} {errors:7d}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thrifty-workers-balance-") as work:
        return asyncio.run(_run(args, Path(work)))


if __name__ == "__main__":
    sys.exit(main())
