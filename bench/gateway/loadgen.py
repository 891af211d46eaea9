"""Load generators: sequential latency on one connection, and a fixed-rate open-loop load corrected
for coordinated omission (wrk2-style). Bounded in count and time; they stop by themselves.

  .venv/bin/python bench/gateway/loadgen.py seq  URL [--against DIRECT_URL] [--requests 2000]
  .venv/bin/python bench/gateway/loadgen.py rate URL --rate 500 [--seconds 20]

Fixed rate: request i is due at t0 + i/rate and its latency is measured from that due time, not
from when it was actually sent, so a server (or a client pool) that falls behind is charged for the
wait of every request queued behind it. Requests still unanswered at the deadline are counted as
``incomplete`` and enter the percentiles with their latency so far (a lower bound).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHAT_PATH = "/v1/chat/completions"
BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France, and since when has it been the capital?"},
        ],
        "max_tokens": 64,
        "temperature": 0,
    },
    separators=(",", ":"),
).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


# --- sequential ---------------------------------------------------------------------------------


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)


def _one(conn: http.client.HTTPConnection, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    conn.request("POST", CHAT_PATH, BODY, headers)
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200 or b'"usage"' not in data:
        raise RuntimeError(f"bad answer {response.status}: {data[:200]!r}")
    return elapsed


def sequential(
    urls: dict[str, str], requests: int, warmup: int = 100, headers: dict[str, dict[str, str]] | None = None
) -> dict[str, list[float]]:
    """One keep-alive connection per URL; the URLs are hit in alternation (A B A B ...) so drift in
    the machine's speed hits all alike. Returns sorted latencies (seconds) per name."""
    conns = {name: _connection(url) for name, url in urls.items()}
    hdrs = {name: (headers or {}).get(name, HEADERS) for name in urls}
    out: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(warmup):
        for name, conn in conns.items():
            _one(conn, hdrs[name])
    gc.collect()
    gc.disable()
    try:
        for _ in range(requests):
            for name, conn in conns.items():
                out[name].append(_one(conn, hdrs[name]))
    finally:
        gc.enable()
        for conn in conns.values():
            conn.close()
    return {name: sorted(values) for name, values in out.items()}


# --- fixed rate, coordinated-omission-corrected ------------------------------------------------


@dataclass
class RateResult:
    rate: float  # requested requests/s
    scheduled: int  # requests due in the window
    ok: int
    errors: int  # non-200 answers and failed connections
    incomplete: int  # still unanswered at the deadline (latency counted up to it)
    achieved: float  # answered requests/s: ok / (last answer - t0)
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    send_lag_p99_ms: float  # how late the generator itself sent (actual send - due time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _FixedRate:
    """One open-loop run: request i is due at t0 + i/rate; its latency counts from that due time.

    A thread keeps the schedule with a µs-precise sleep and hands each request to the event loop:
    libuv timers have 1 ms resolution, which measured here as twice the p99 floor at 500/s."""

    def __init__(self, url: str, rate: float, seconds: float, headers: dict[str, str] | None) -> None:
        self.target = url.rstrip("/") + CHAT_PATH
        self.rate, self.seconds, self.headers = rate, seconds, headers or HEADERS
        self.latency: list[float | None] = [None] * int(rate * seconds)
        self.lag: list[float] = []
        self.ok = self.errors = 0
        self.last_done = 0.0
        self.t0 = 0.0
        self.pending: set[asyncio.Task[None]] = set()
        self.stop = threading.Event()

    async def one(self, session: Any, i: int, due: float) -> None:
        import aiohttp

        self.lag.append(time.perf_counter() - due)
        try:
            async with session.post(self.target, data=BODY, headers=self.headers) as response:
                data = await response.read()
            good = response.status == 200 and b'"usage"' in data
        except (TimeoutError, aiohttp.ClientError, OSError):
            good = False
        self.last_done = time.perf_counter()
        self.latency[i] = self.last_done - due
        if good:
            self.ok += 1
        else:
            self.errors += 1

    def schedule(self, loop: asyncio.AbstractEventLoop, session: Any, all_sent: asyncio.Event) -> None:
        def start(i: int, due: float) -> None:
            task = loop.create_task(self.one(session, i, due))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

        for i in range(len(self.latency)):
            due = self.t0 + i / self.rate
            delay = due - time.perf_counter()
            if delay > 0 and self.stop.wait(delay):
                return
            loop.call_soon_threadsafe(start, i, due)
        loop.call_soon_threadsafe(all_sent.set)

    async def run(self, drain: float, connections: int) -> RateResult:
        import aiohttp

        loop = asyncio.get_running_loop()
        all_sent = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
            self.t0 = time.perf_counter() + 0.05
            switch = sys.getswitchinterval()
            sys.setswitchinterval(0.0002)  # the scheduler thread gets the GIL within 0.2 ms, not 5 ms
            thread = threading.Thread(target=self.schedule, args=(loop, session, all_sent), daemon=True)
            thread.start()
            try:
                await all_sent.wait()
                deadline = self.t0 + self.seconds + drain
                if self.pending:
                    await asyncio.wait(set(self.pending), timeout=max(0.0, deadline - time.perf_counter()))
            finally:
                self.stop.set()
                sys.setswitchinterval(switch)
                thread.join()
                end = time.perf_counter()
                for task in list(self.pending):
                    task.cancel()
                if self.pending:
                    await asyncio.wait(set(self.pending))
        return self.summary(end)

    def summary(self, end: float) -> RateResult:
        """Percentiles over every scheduled request; an unanswered one counts its wait up to ``end``."""
        t0, rate = self.t0, self.rate
        done = sorted(end - (t0 + i / rate) if v is None else v for i, v in enumerate(self.latency))
        lag = sorted(self.lag)
        ms = 1000.0
        return RateResult(
            rate=rate,
            scheduled=len(self.latency),
            ok=self.ok,
            errors=self.errors,
            incomplete=sum(1 for v in self.latency if v is None),
            achieved=self.ok / (self.last_done - t0) if self.last_done > t0 else 0.0,
            p50_ms=percentile(done, 50) * ms,
            p99_ms=percentile(done, 99) * ms,
            p999_ms=percentile(done, 99.9) * ms,
            max_ms=done[-1] * ms if done else float("nan"),
            send_lag_p99_ms=percentile(lag, 99) * ms,
        )


async def fixed_rate(
    url: str,
    rate: float,
    seconds: float,
    *,
    drain: float = 5.0,
    connections: int = 1024,
    headers: dict[str, str] | None = None,
) -> RateResult:
    """Open loop: ``rate * seconds`` requests, each due at t0 + i/rate, whether or not earlier
    ones were answered. Waits at most ``drain`` seconds after the last is due, then gives up."""
    return await _FixedRate(url, rate, seconds, headers).run(drain, connections)


def run_fixed_rate(url: str, rate: float, seconds: float, **kwargs: object) -> RateResult:
    import uvloop

    gc.collect()
    gc.freeze()  # what exists now is never scanned again: shorter collections during the run
    try:
        return uvloop.run(fixed_rate(url, rate, seconds, **kwargs))  # type: ignore[arg-type]
    finally:
        gc.unfreeze()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    seq = sub.add_parser("seq", help="sequential latency on one connection")
    seq.add_argument("url")
    seq.add_argument("--against", help="a second URL (e.g. the upstream direct) hit in alternation")
    seq.add_argument("--requests", type=int, default=2000)
    rate = sub.add_parser("rate", help="fixed-rate open loop, coordinated-omission-corrected")
    rate.add_argument("url")
    rate.add_argument("--rate", type=float, required=True)
    rate.add_argument("--seconds", type=float, default=20.0)
    rate.add_argument("--drain", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if args.mode == "seq":
        urls = {"target": args.url, **({"direct": args.against} if args.against else {})}
        result: dict[str, object] = {
            name: {"p50_ms": percentile(v, 50) * 1e3, "p99_ms": percentile(v, 99) * 1e3, "n": len(v)}
            for name, v in sequential(urls, args.requests).items()
        }
    else:
        result = run_fixed_rate(args.url, args.rate, args.seconds, drain=args.drain).as_dict()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
