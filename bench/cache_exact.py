"""Exact cache hit latency against the gateway's own floor, measured in the same run.

Run: .venv/bin/python bench/cache_exact.py
Target (issue 4): an exact hit adds at most 0.3 ms (p50) over the gateway's floor. The floor is a
chat request the gateway answers itself without the cache or an upstream (an unknown model: the
body is read, parsed and answered), on the same connection, alternating with the hits.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import orjson

from _util import free_port, percentile, stop_all, wait_ready

ROOT = Path(__file__).resolve().parent.parent
THRIFTY = [sys.executable, "-m", "thrifty.cli.main"]
CONFIG = """
storage: {{ledger: "sqlite:///{home}/ledger.db", journal_dir: "{home}/journal"}}
providers:
  sim: {{kind: openai, base_url: "http://127.0.0.1:{sim}/v1"}}
models:
  - {{name: gpt-4o-mini, provider: sim}}
"""


def main(rounds: int = 3000) -> None:
    home = Path(tempfile.mkdtemp(prefix="thrifty-cache-bench-"))
    sim_port, gw_port = free_port(), free_port()
    (home / "gateway.yaml").write_text(CONFIG.format(home=home, sim=sim_port))
    env = {**os.environ, "THRIFTY_HOME": str(home)}
    processes = [
        subprocess.Popen([*THRIFTY, "simulate", "--port", str(sim_port)], env=env, stderr=subprocess.DEVNULL),
        subprocess.Popen(
            [
                *THRIFTY,
                "serve",
                "--config",
                str(home / "gateway.yaml"),
                "--port",
                str(gw_port),
                "--log-level",
                "warning",
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{sim_port}/_simulator/health")
        wait_ready(f"http://127.0.0.1:{gw_port}/readyz")
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        messages = [{"role": "user", "content": "What is the capital of France, and since when?"}]
        hit_body = orjson.dumps({"model": "gpt-4o-mini", "messages": messages, "temperature": 0, "max_tokens": 40})
        floor_body = orjson.dumps({"model": "no-such-model", "messages": messages, "temperature": 0, "max_tokens": 40})
        headers = {"content-type": "application/json"}
        with httpx2.Client(headers=headers, timeout=10) as client:
            assert client.post(url, content=hit_body).headers["x-thrifty-cache"] == "miss"
            hits: list[float] = []
            floor: list[float] = []
            for _ in range(rounds):
                start = time.perf_counter()
                response = client.post(url, content=hit_body)
                hits.append((time.perf_counter() - start) * 1000)
                assert response.headers["x-thrifty-cache"] == "hit", response.headers
                start = time.perf_counter()
                response = client.post(url, content=floor_body)
                floor.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 404
        added = [h - f for h, f in zip(hits, floor, strict=True)]
        print(f"{rounds:,} exact-cache hits and {rounds:,} floor requests, alternating on one connection")
        print(f"  hit    p50 {statistics.median(hits):6.3f} ms   p99 {percentile(hits, 0.99):6.3f} ms")
        print(f"  floor  p50 {statistics.median(floor):6.3f} ms   p99 {percentile(floor, 0.99):6.3f} ms")
        print(f"  added by a hit (pairwise): p50 {statistics.median(added):6.3f} ms   target <= 0.300 ms")
    finally:
        stop_all(processes)


if __name__ == "__main__":
    main()
