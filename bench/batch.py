"""Creating a batch through the gateway (upload + create: every line checked, looked up in the
exact cache and written out per provider) against uploading the same file straight to the
simulator, in the same run, with the official openai SDK.

Run: .venv/bin/python bench/batch.py [--lines 50000] [--rounds 3]

Both servers run as ``thrifty simulate`` and ``thrifty serve`` processes on loopback. Printed:
the median time of each over the rounds (alternating), and their ratio (issue 10's goal: <= 2x).
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import free_port, stop_all, wait_ready

THRIFTY = str(Path(sys.executable).parent / "thrifty")


def input_file(lines: int) -> bytes:
    out = io.BytesIO()
    for i in range(lines):
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Classify support ticket {i}: my invoice is wrong."}],
            "max_tokens": 16,
            "temperature": 0,
        }
        out.write(orjson.dumps({"custom_id": f"t-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
        out.write(b"\n")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = input_file(args.lines)
    home = Path(tempfile.mkdtemp(prefix="thrifty-bench-batch-"))
    sim_port, gw_port = free_port(), free_port()
    config = home / "gateway.yaml"
    config.write_text(
        f"""
server: {{port: {gw_port}, max_body_bytes: 1073741824}}
storage: {{ledger: "sqlite:///{home / "ledger.db"}"}}
providers: {{sim: {{kind: openai, base_url: "http://127.0.0.1:{sim_port}/v1"}}}}
models: [{{name: gpt-4o-mini, provider: sim}}]
batch: {{poll_interval_s: 3600}}
"""
    )
    processes = [
        subprocess.Popen([THRIFTY, "simulate", "--port", str(sim_port)]),
        subprocess.Popen([THRIFTY, "serve", "--config", str(config), "--no-access-log", "--log-level", "warning"]),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{sim_port}/_simulator/health")
        wait_ready(f"http://127.0.0.1:{gw_port}/healthz")
        simulator = openai.OpenAI(base_url=f"http://127.0.0.1:{sim_port}/v1", api_key="x", timeout=600)
        gateway = openai.OpenAI(base_url=f"http://127.0.0.1:{gw_port}/v1", api_key="x", timeout=600)

        def straight() -> float:
            start = time.perf_counter()
            simulator.files.create(file=("in.jsonl", data), purpose="batch")
            return time.perf_counter() - start

        def through() -> float:
            start = time.perf_counter()
            uploaded = gateway.files.create(file=("in.jsonl", data), purpose="batch")
            gateway.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
            return time.perf_counter() - start

        straight()
        through()  # warm up both
        direct, gated = [], []
        for _ in range(args.rounds):
            direct.append(straight())
            gated.append(through())
        a, b = statistics.median(gated), statistics.median(direct)
        size = len(data) / 1e6
        print(f"{args.lines:,} lines ({size:.1f} MB), median of {args.rounds} rounds:")
        print(f"  upload straight to the simulator:        {b:.3f} s")
        print(f"  upload + create through the gateway:     {a:.3f} s")
        print(f"  ratio gateway / simulator upload:        {a / b:.2f}x")
    finally:
        stop_all(processes)


if __name__ == "__main__":
    main()
