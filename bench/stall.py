"""One client cannot stall everyone: the latency of a small request on an idle gateway against the
same during a flood of large bodies and slow (slowloris) connections, measured in the same run.

Run: .venv/bin/python bench/stall.py [--seconds S] [--idle-seconds S]

The gateway (``thrifty serve`` with its default ``server:`` limits, the exact cache off) and the
simulated upstream run as processes of their own, and so does the flood, so the probe's timings
are not the flood's CPU. The flood, from one client address, each client starting again as soon
as it is answered or cut off:

- 3 clients sending ~9 MB bodies of 300,000 one-token messages (past ``server.max_messages``);
- 3 clients sending ~8 MB bodies of 9,000 messages of text (2.3 million tokens: counted, then
  refused as too long for the model's context window);
- 40 connections sending their headers a byte every 0.5 s, and 10 sending their body so.

The probe: a small chat request (answered by the upstream), one at a time on one kept-alive
connection every 50 ms, timed from sending it to the last byte of the answer. Printed: p50, p99
and max for idle and flood, their ratios, and what the flood's requests got (with the longest any
slow connection was held).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import free_port, percentile, stop_all, wait_ready

THRIFTY = [sys.executable, "-m", "thrifty.cli.main"]
CONFIG = """
storage: {{ledger: "sqlite:///{home}/ledger.db", journal_dir: "{home}/journal"}}
providers:
  sim: {{kind: openai, base_url: "http://127.0.0.1:{sim}/v1"}}
models:
  - {{name: gpt-4o-mini, provider: sim}}
cache: {{exact: {{enabled: false}}}}
"""
SMALL = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 5})
JSON = {"content-type": "application/json"}
SLOW_HEADERS = (b"", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100_000)
SLOW_BODY = (  # the headers at once, then the body a byte at a time
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n",
    b" " * 100_000,
)


def many_messages() -> bytes:
    """~9 MB: 300,000 messages of one token each."""
    messages = [{"role": "user", "content": "hi"}] * 300_000
    return orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 1, "messages": messages})


def much_text() -> bytes:
    """~8 MB: 9,000 messages of ~900 characters of words each."""
    message = {"role": "user", "content": " ".join(f"word{n % 997}" for n in range(125))}
    return orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 1, "messages": [message] * 9_000})


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.held: dict[str, float] = {}

    def add(self, what: str, held_s: float | None = None) -> None:
        with self.lock:
            self.counts[what] += 1
            kind = what.split(maxsplit=1)[0]
            if held_s is not None and held_s > self.held.get(kind, 0.0):
                self.held[kind] = held_s


def _status(answer: bytes) -> str:
    return answer[9:12].decode(errors="replace") if answer.startswith(b"HTTP/1.1 ") else "no answer"


def large_client(port: int, name: str, body: bytes, stop: threading.Event, tally: Tally) -> None:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
                sock.sendall(head + body)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            tally.add(f"{name} {_status(b''.join(chunks))}")
        except OSError as error:
            tally.add(f"{name} {type(error).__name__}")


def slow_client(port: int, name: str, request: tuple[bytes, bytes], stop: threading.Event, tally: Tally) -> None:
    """``request[0]`` at once, then a byte of ``request[1]`` every 0.5 s, until the server answers
    or closes; then again."""
    prefix, data = request
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            sock.sendall(prefix)
        except OSError:
            time.sleep(0.5)
            continue
        opened, sent, answer, cut = time.monotonic(), 0, b"", False
        sock.setblocking(False)
        while not stop.is_set():
            try:
                sock.send(data[sent : sent + 1])
                sent += 1
            except OSError:
                cut = True
                break
            stop.wait(0.5)
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                cut = True
                break
            if not chunk:
                cut = True
                break
            answer += chunk
        sock.close()
        if cut or answer:
            tally.add(f"{name} {_status(answer)}", time.monotonic() - opened)


def flood(port: int, ready: Any, stop_flood: Any, out: Any) -> None:
    stop, tally = threading.Event(), Tally()
    many, text = many_messages(), much_text()
    clients: list[tuple[Any, str, Any, int]] = [
        (large_client, "300k-messages", many, 3),
        (large_client, "9k-long-messages", text, 3),
        (slow_client, "slow-headers", SLOW_HEADERS, 40),
        (slow_client, "slow-body", SLOW_BODY, 10),
    ]
    threads = [
        threading.Thread(target=target, args=(port, name, request, stop, tally))
        for target, name, request, count in clients
        for _ in range(count)
    ]
    for thread in threads:
        thread.daemon = True
        thread.start()
    ready.set()
    stop_flood.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=130)
    out.put((dict(tally.counts), tally.held))


def probe(port: int, seconds: float) -> list[float]:
    """Milliseconds per small request, one at a time on one connection, every 50 ms for ``seconds``."""
    times: list[float] = []
    with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, headers=JSON) as client:
        client.post("/v1/chat/completions", content=SMALL)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            response = client.post("/v1/chat/completions", content=SMALL)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text
            time.sleep(0.05)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40.0, help="probing under the flood (past body_timeout_s)")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--ramp-seconds", type=float, default=3.0, help="flood before the probe starts")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="thrifty-stall-bench-"))
    sim_port, port = free_port(), free_port()
    (home / "gateway.yaml").write_text(CONFIG.format(home=home, sim=sim_port))
    env = {**os.environ, "THRIFTY_HOME": str(home)}
    serve = [*THRIFTY, "serve", "--config", str(home / "gateway.yaml"), "--port", str(port), "--log-level", "warning"]
    processes = [
        subprocess.Popen([*THRIFTY, "simulate", "--port", str(sim_port)], env=env, stderr=subprocess.DEVNULL),
        subprocess.Popen(serve, env=env, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{sim_port}/_simulator/health")
        wait_ready(f"http://127.0.0.1:{port}/readyz")
        idle = probe(port, args.idle_seconds)
        context = multiprocessing.get_context("spawn")
        ready, stop_flood, out = context.Event(), context.Event(), context.Queue()
        flooder = context.Process(target=flood, args=(port, ready, stop_flood, out))
        flooder.start()
        ready.wait()
        time.sleep(args.ramp_seconds)
        flooded = probe(port, args.seconds)
        stop_flood.set()
        counts, held = out.get(timeout=300)
        flooder.join()
    finally:
        stop_all(processes)
    print(f"a small chat request, one at a time every 50 ms: {len(idle)} idle, then {len(flooded)} during the flood")
    for name, times in (("idle", idle), ("flood", flooded)):
        p50, p99 = statistics.median(times), percentile(times, 0.99)
        print(f"  {name:6} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms   max {max(times):8.2f} ms")
    p50_ratio = statistics.median(flooded) / statistics.median(idle)
    p99_ratio = percentile(flooded, 0.99) / percentile(idle, 0.99)
    print(f"  flood / idle: p50 {p50_ratio:.2f}x, p99 {p99_ratio:.2f}x")
    print("the flood's requests got:")
    for what, count in sorted(counts.items()):
        print(f"  {what:28} {count:6,}")
    for kind, seconds in sorted(held.items()):
        print(f"  longest a {kind} connection was held: {seconds:.1f} s")


if __name__ == "__main__":
    main()
