"""What an idle gateway costs: CPU of ``thrifty serve`` and of its ledger sidecar while no request
comes, against a bare uvicorn app idling in the same run (the floor of any server on that stack).

Run: .venv/bin/python bench/idle.py [--seconds S]

The gateway serves ``--demo`` (its simulated upstream in the same process); after one request
(so every lazy part has started) and a settling pause, the CPU time (user + system, from /proc) of
each process is sampled over the window. Printed: percent of one core for each, and the gateway's
ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")

_BARE_APP = """
import uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the process exited ({process.returncode})")
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"{url}: not ready after 60 s")


def sample(pids: dict[str, int], seconds: float) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (cpu_seconds(pid) - before[name]) / seconds * 100 for name, pid in pids.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="the sampling window (default 20)")
    parser.add_argument("--settle", type=float, default=3.0, help="pause before sampling (default 3)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thrifty-idle-") as work:
        bare_port, gateway_port = free_port(), free_port()
        bare = subprocess.Popen([PYTHON, "-c", _BARE_APP, str(bare_port)])
        env = {**os.environ, "THRIFTY_HOME": str(Path(work) / "home")}
        command = [PYTHON, "-m", "thrifty.cli.main", "serve", "--demo", "--port", str(gateway_port)]
        gateway = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, cwd=work)
        try:
            wait_ready(f"http://127.0.0.1:{bare_port}/", bare)
            wait_ready(f"http://127.0.0.1:{gateway_port}/readyz", gateway)
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
            httpx2.post(f"http://127.0.0.1:{gateway_port}/v1/chat/completions", json=body, timeout=30)
            httpx2.get(f"http://127.0.0.1:{bare_port}/")
            time.sleep(opts.settle)
            sidecars = children(gateway.pid)
            pids = {"bare uvicorn app": bare.pid, "thrifty serve": gateway.pid}
            pids.update({f"ledger sidecar (pid {pid})": pid for pid in sidecars})
            used = sample(pids, opts.seconds)
        finally:
            for process in (gateway, bare):
                process.terminate()
                process.wait(timeout=30)
    print(f"idle CPU over {opts.seconds:g} s, percent of one core:")
    for name, percent in used.items():
        print(f"  {name:<32} {percent:6.2f} %")
    base = used["bare uvicorn app"]
    total = sum(p for name, p in used.items() if name != "bare uvicorn app")
    print(f"  {'thrifty, all processes':<32} {total:6.2f} %")
    if base > 0:
        print(f"ratio thrifty (all) / bare app: {total / base:.1f}x")
    else:
        print("ratio: the bare app used no measurable CPU (below one clock tick)")


if __name__ == "__main__":
    main()
