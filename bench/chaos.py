"""Chaos on real processes: ``thrifty serve --workers 4`` on a private Redis and a private
PostgreSQL, under a steady mixed load (streams included), while Redis restarts, PostgreSQL
restarts, a worker is SIGKILLed mid-stream, a broken config is sent by SIGHUP and then a good one.
Then it counts: requests sent, answered, clean errors (an HTTP error in the API's shape), broken
ones (the connection cut), the ledger's rows for the answered calls (none missing, none twice),
the budget's overspend, and how long the exact cache and the rate limit took to work again after
Redis came back.

  .venv/bin/python bench/chaos.py                  # ~2 min
  .venv/bin/python bench/chaos.py --soak 30        # then 30 min at a fixed rate: memory and fds

It never touches the machine's own Redis or PostgreSQL: both are started here, on free ports, in a
temporary directory (PostgreSQL from the Debian binaries, as the ``postgres`` user when run as
root), and stopped at the end. The upstream is thrifty's simulator, its streams slowed so a kill
lands mid-stream. Not a test (it takes minutes and needs the PostgreSQL server binaries).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._util import free_port  # noqa: E402

VENV_BIN = Path(sys.executable).parent
BUDGET_USD = Decimal("0.0005")
PROMPTS = [f"Give me tip number {n} for writing clear commit messages." for n in range(40)]


# -- services ----------------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise SystemExit(f"no {name}: this benchmark needs the PostgreSQL server binaries")
    return found[-1]


class PrivatePostgres:
    """A throwaway cluster (trust auth on loopback) that can be restarted."""

    def __init__(self, root: Path) -> None:
        self.data = root / "pgdata"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        root.mkdir()
        if self.as_root:
            shutil.chown(root, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        full = ["runuser", "-u", "postgres", "--", *cmd] if self.as_root else list(cmd)
        subprocess.run(full, check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l", str(self.data / "log"), "start")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


class PrivateRedis:
    """Append-only, as budgets need (a Redis that forgets its counters forgets what was spent)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
        self.proc = subprocess.Popen([*cmd, "--dir", str(self.dir)], stdout=subprocess.DEVNULL, start_new_session=True)
        for _ in range(100):
            if (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], check=False, capture_output=True
                ).stdout.strip()
                == b"PONG"
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("the private Redis did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# -- the gateway ---------------------------------------------------------------------------------------


def gateway_config(home: Path, pg: str, redis: str, upstream: str, *, price: str | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {"name": "gpt-4o-mini", "provider": "sim"}
    if price is not None:  # the good reload: a new price for new requests
        model["price"] = {"input_mtok": price, "output_mtok": price}
    return {
        "server": {"host": "127.0.0.1"},
        "auth": "none",
        "storage": {"ledger": pg, "journal_dir": str(home / "journal"), "redis": redis},
        "retry": {"attempts": 2, "backoff_base_s": 0.05, "attempt_timeout_s": 20},
        "providers": {"sim": {"kind": "openai", "base_url": f"{upstream}/v1"}},
        "models": [model],
        "cache": {"exact": {"enabled": True, "ttl_s": 600}},
        "budgets": {"limits": [{"scope": "team", "value": "budgeted", "usd": str(BUDGET_USD), "window": "day"}]},
        "rate_limits": {"max_wait_s": 0, "limits": [{"scope": "user", "value": "limited", "requests_per_minute": 30}]},
    }


def worker_pids(supervisor: int) -> list[int]:
    """The supervisor's children: its workers."""
    return [int(c) for c in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()]


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        with contextlib.suppress(OSError):
            todo.extend(int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split())
    return out


def rss_and_fds(pid: int) -> tuple[float, int]:
    rss, fds = 0.0, 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) / 1024
            fds += len(os.listdir(f"/proc/{member}/fd"))
    return rss, fds


# -- the load -------------------------------------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    answered: dict[str, str] = field(default_factory=dict)  # request id -> team
    clean: Counter[int] = field(default_factory=Counter)
    broken: Counter[str] = field(default_factory=Counter)
    hits: list[float] = field(default_factory=list)  # when an exact hit was answered (monotonic)
    limited: list[float] = field(default_factory=list)  # when a 429 from the rate limit came
    streams: int = 0
    stream_seconds: list[float] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)  # request ids of streams cut mid-way
    errors_at: list[tuple[float, int]] = field(default_factory=list)
    answered_at: dict[str, float] = field(default_factory=dict)
    in_flight: int = 0


async def one(session: aiohttp.ClientSession, url: str, tally: Tally, rng: random.Random) -> None:
    stream = rng.random() < 0.3
    team = "budgeted" if rng.random() < 0.2 else "load"
    user = "limited" if rng.random() < 0.15 else f"u{rng.randrange(20)}"
    # Streams, the budgeted team's and the limited user's questions are each new: a cache hit
    # spends nothing, never reaches the rate limit and replays at once, so only misses test those.
    fresh = stream or team == "budgeted" or user == "limited"
    question = f"{rng.choice(PROMPTS)} (case {tally.sent})" if fresh else rng.choice(PROMPTS)
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": 60,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    headers = {"x-thrifty-team": team, "x-thrifty-user": user}
    tally.sent += 1
    began = time.monotonic()
    tally.in_flight += 1
    try:
        async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as response:
            request_id = response.headers.get("x-thrifty-request-id", "")
            try:
                raw = await response.read()
            except aiohttp.ClientPayloadError:
                tally.cut.append(request_id)
                raise
            if response.status != 200:
                shaped = response.content_type == "application/json" and "error" in json.loads(raw or b"{}")
                if shaped:
                    tally.clean[response.status] += 1
                    tally.errors_at.append((time.monotonic(), response.status))
                    if response.status == 429 and user == "limited":
                        tally.limited.append(time.monotonic())
                else:
                    tally.broken[f"http {response.status} without an error body"] += 1
                return
            if stream and b"data: [DONE]" not in raw:  # (thrifty's cost comment follows it)
                tally.broken["stream cut"] += 1
                return
            tally.streams += stream
            tally.answered[request_id] = team
            tally.answered_at[request_id] = time.monotonic()
            if response.headers.get("x-thrifty-cache") == "hit":
                tally.hits.append(time.monotonic())
    except (TimeoutError, aiohttp.ClientError) as error:
        tally.broken[type(error).__name__] += 1
    finally:
        tally.in_flight -= 1
        if stream:
            tally.stream_seconds.append(time.monotonic() - began)


async def load(url: str, rate: float, seconds: float, tally: Tally, seed: int = 7) -> None:
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=200)) as session:
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            n += 1
            task = asyncio.create_task(one(session, url, tally, rng))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        await asyncio.gather(*tasks)


def first_after(times: list[float], moment: float) -> float | None:
    later = [t for t in times if t >= moment]
    return min(later) - moment if later else None


# -- the run --------------------------------------------------------------------------------------------


@dataclass
class Stage:
    """What one run started: the services, the simulator and the gateway."""

    root: Path
    pg: PrivatePostgres
    redis: PrivateRedis
    home: Path
    logs: Path
    upstream: str
    config_file: Path
    url: str = ""
    gateway: subprocess.Popen[bytes] | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.home)
        self.procs.append(proc)
        return proc

    def config(self, price: str | None = None) -> str:
        return yaml.safe_dump(gateway_config(self.home, self.pg.url, self.redis.url, self.upstream, price=price))

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.redis.stop()
        self.pg.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def stage(workers: int) -> Stage:
    root = Path(tempfile.mkdtemp(prefix="thrifty-chaos-"))
    os.chmod(root, 0o755)
    pg, redis = PrivatePostgres(root / "pg"), PrivateRedis(root)
    pg.start()
    redis.start()
    home, logs = root / "gw", root / "logs"
    home.mkdir()
    logs.mkdir()
    sim_port, port = free_port(), free_port()
    sim_config = root / "sim.yaml"
    sim_config.write_text(yaml.safe_dump({"faults": {"gpt-4o-mini": {"chunk_delay_ms": 40}}}))
    on = Stage(root, pg, redis, home, logs, f"http://127.0.0.1:{sim_port}", home / "gateway.yaml")
    thrifty = str(VENV_BIN / "thrifty")
    on.start("simulator", [thrifty, "simulate", "--port", str(sim_port), "--config", str(sim_config)])
    on.config_file.write_text(on.config())
    serve = [thrifty, "serve", "--config", str(on.config_file), "--port", str(port), "--workers", str(workers)]
    on.gateway = on.start("gateway", serve)
    on.url = f"http://127.0.0.1:{port}"
    return on


async def timeline(on: Stage, rate: float, tally: Tally, events: dict[str, float]) -> None:
    """The load for 80 s, and the events in it."""
    assert on.gateway is not None
    runner = asyncio.create_task(load(on.url, rate, 80, tally))
    await asyncio.sleep(10)
    events["redis down"] = time.monotonic()
    on.redis.stop()
    await asyncio.sleep(3)
    on.redis.start()
    events["redis back"] = time.monotonic()
    await asyncio.sleep(12)
    events["postgres down"] = time.monotonic()
    await asyncio.to_thread(on.pg.stop)
    await asyncio.sleep(4)
    await asyncio.to_thread(on.pg.start)
    events["postgres back"] = time.monotonic()
    await asyncio.sleep(12)
    victims = worker_pids(on.gateway.pid)
    events["worker killed"] = time.monotonic()
    events["in flight at the kill"] = tally.in_flight
    os.kill(victims[0], signal.SIGKILL)
    await asyncio.sleep(12)
    on.config_file.write_text("models: [this is: not a config\n")
    events["bad reload"] = time.monotonic()
    os.kill(on.gateway.pid, signal.SIGHUP)
    await asyncio.sleep(5)
    on.config_file.write_text(on.config(price="0.2"))
    events["good reload"] = time.monotonic()
    os.kill(on.gateway.pid, signal.SIGHUP)
    await runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--soak", type=float, default=0.0, help="then soak for this many minutes")
    parser.add_argument("--soak-rate", type=float, default=20.0)
    args = parser.parse_args()
    on = stage(args.workers)
    events: dict[str, float] = {}
    tally = Tally()
    try:
        assert on.gateway is not None
        _wait_ready(on.url, 60)
        began = time.monotonic()
        asyncio.run(timeline(on, args.rate, tally, events))
        elapsed = time.monotonic() - began
        soak: list[tuple[float, float, int]] = []
        if args.soak > 0:
            soak = _soak(on.url, on.gateway.pid, args.soak, args.soak_rate, tally)
        on.gateway.send_signal(signal.SIGTERM)
        status = on.gateway.wait(90)
        _report(args, tally, events, elapsed, status, on.pg.url, soak, on.logs)
    finally:
        on.close()


def _wait_ready(url: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(f"{url}/readyz", timeout=2).status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("the gateway did not become ready")


def _soak(url: str, supervisor: int, minutes: float, rate: float, tally: Tally) -> list[tuple[float, float, int]]:
    samples: list[tuple[float, float, int]] = []

    async def run() -> None:
        runner = asyncio.create_task(load(url, rate, minutes * 60, tally, seed=11))
        start = time.monotonic()
        while not runner.done():
            rss, fds = rss_and_fds(supervisor)
            samples.append((time.monotonic() - start, rss, fds))
            await asyncio.sleep(15)
        await runner

    asyncio.run(run())
    return samples


def _report(
    args: argparse.Namespace,
    tally: Tally,
    events: dict[str, float],
    elapsed: float,
    status: int,
    pg_url: str,
    soak: list[tuple[float, float, int]],
    logs: Path,
) -> None:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            b"SELECT request_id, status, team, cost_total, cache_status, input_tokens, output_tokens FROM ledger "
            b"WHERE cache_status IS DISTINCT FROM 'internal'"
        ).fetchall()
    per_request = Counter(r[0] for r in rows)
    statuses = {r[0]: r[1] for r in rows}
    missing = [rid for rid in tally.answered if rid not in per_request]
    twice = [rid for rid, n in per_request.items() if n > 1 and rid is not None]  # (budget alerts have none)
    not_ok = Counter(statuses[rid] for rid in tally.answered if rid in statuses and statuses[rid] != "ok")
    spent = sum((Decimal(r[3]) for r in rows if r[2] == "budgeted" and r[3] is not None), Decimal(0))
    costs = sorted(Decimal(r[3]) for r in rows if r[3] is not None)
    biggest = costs[-1] if costs else Decimal(0)
    cut_status = Counter(statuses.get(rid, "missing") for rid in tally.cut)
    repriced = [r for r in rows if tally.answered_at.get(r[0], 0) > events["good reload"] + 1 and r[4] == "miss"]
    new_price = sum(
        1
        for r in repriced
        if r[3] is not None and Decimal(r[3]) == (Decimal(r[5]) + Decimal(r[6])) * Decimal("0.2") / 10**6
    )
    windows = {
        "Redis down": (events["redis down"], events["redis back"] + 1),
        "PostgreSQL down": (events["postgres down"], events["postgres back"] + 1),
    }
    by_window: Counter[str] = Counter()
    for at, code in tally.errors_at:
        if code == 429:
            continue
        where = next((name for name, (a, b) in windows.items() if a <= at <= b), "other times")
        by_window[f"{code} {where}"] += 1
    cache_back = first_after(tally.hits, events["redis back"])
    limit_back = first_after(tally.limited, events["redis back"])
    bad_reload = (logs / "gateway.log").read_text(errors="replace").count("refused")
    print(f"chaos: {args.workers} workers, {args.rate:g} requests/s for {elapsed:.0f} s, 30% streamed")
    print("  events: Redis restarted (3 s down), PostgreSQL restarted (4 s down), a worker SIGKILLed,")
    print("          SIGHUP with a broken config, SIGHUP with a good one (a new price)")
    print(
        f"  sent {tally.sent:,}; answered {len(tally.answered):,} ({tally.streams:,} streams, median "
        f"{statistics.median(tally.stream_seconds):.2f} s each); {events['in flight at the kill']:.0f} calls "
        f"in flight (on all workers) at the kill"
    )
    print(f"  clean errors: {dict(sorted(tally.clean.items())) or 'none'}")
    print(f"    errors other than 429 by when: {dict(by_window) or 'none'}")
    print(f"  broken (connection cut, stream cut): {dict(tally.broken) or 'none'}")
    print(f"    streams cut by the worker's kill, as the ledger has them: {dict(cut_status) or 'none'}")
    print(f"  ledger: {len(rows):,} rows; answered calls missing: {len(missing)}; recorded twice: {len(twice)}")
    for rid in twice:
        print("    twice:", [r for r in rows if r[0] == rid], "answered" if rid in tally.answered else "not answered")
    if not_ok:
        print(f"    answered calls recorded with another status: {dict(not_ok)}")
    print(
        f"  budget: team 'budgeted' spent ${spent} of ${BUDGET_USD} "
        f"(over by ${max(Decimal(0), spent - BUDGET_USD)}; the largest single call cost ${biggest})"
    )
    print(f"  after the good reload: {new_price} of {len(repriced)} new misses priced at the new price")
    print(f"  after Redis came back: first exact-cache hit in {_s(cache_back)}, first 429 in {_s(limit_back)}")
    refused = "yes" if bad_reload else "NOT SEEN in the log"
    print(f"  broken-config reload refused: {refused}; gateway exit status {status}")
    if soak:
        n = max(1, len(soak) // 6)
        head, tail = soak[:n], soak[-n:]
        rss0, rss1 = statistics.mean(s[1] for s in head), statistics.mean(s[1] for s in tail)
        fd0, fd1 = statistics.mean(s[2] for s in head), statistics.mean(s[2] for s in tail)
        print(
            f"  soak {args.soak:g} min at {args.soak_rate:g}/s: resident memory {rss0:.0f} -> {rss1:.0f} MB "
            f"({(rss1 / rss0 - 1) * 100:+.1f}%), open fds {fd0:.0f} -> {fd1:.0f} ({(fd1 / fd0 - 1) * 100:+.1f}%), "
            f"first sixth vs last sixth of {len(soak)} samples"
        )


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    main()
