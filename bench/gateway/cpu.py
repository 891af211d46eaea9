"""CPU per call: how much processor time each gateway spends on one request, measured so that
other work on a shared machine barely moves it.

Run: .venv/bin/python bench/gateway/cpu.py [--targets thrifty,passthrough] [--rounds 3]
                                           [--tree LABEL=DIR ...] [--seconds 6]

Throughput under wrk falls when another process takes the core; the CPU seconds the server's
process tree spends per answered request (from /proc, over a wrk run of fixed length) mostly does
not. Each round measures every target once, in turn, so a slow patch of the machine hits them all;
the median per target is reported, and its ratio to passthrough's (same run). ``--tree old=DIR``
adds a thrifty target run from another source tree (``DIR/src`` first on its PYTHONPATH): a
before/after comparison of two commits in one run (``git worktree add DIR REV``).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from procs import Processes, cpu_seconds, free_port, wait_idle, wait_ready  # noqa: E402
from run import LOAD_CORE, SERVER_CORE, TARGETS, VENV_BIN, Target, run_wrk  # noqa: E402


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _targets(names: list[str], trees: list[str], mock_url: str, work: Path) -> list[tuple[str, Target, int]]:
    out = []
    for name in names:
        port = free_port()
        out.append((name, TARGETS[name](port, mock_url, work / name), port))
    for spec in trees:
        label, _, directory = spec.partition("=")
        port = free_port()
        target = TARGETS["thrifty"](port, mock_url, work / f"thrifty-{label}")
        env = {**target.env, "PYTHONPATH": str(Path(directory).resolve() / "src")}
        out.append((f"thrifty@{label}", Target(f"thrifty@{label}", target.cmd, env, after=target.after), port))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="thrifty,passthrough")
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="each wrk run")
    opts = parser.parse_args()
    names = [n.strip() for n in opts.targets.split(",") if n.strip()]
    if unknown := [n for n in names if n not in TARGETS]:
        parser.error(f"unknown targets: {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    for spec in opts.tree:
        if "=" not in spec or not (Path(spec.partition("=")[2]) / "src" / "thrifty").is_dir():
            parser.error(f"--tree {spec}: expected LABEL=DIR with DIR/src/thrifty")
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="thrifty-cpu-bench-"))
    procs = Processes(work)
    per_call: dict[str, list[float]] = {}
    rps: dict[str, list[float]] = {}
    try:
        mock_port = free_port()
        mock = procs.start(
            "mock", [str(VENV_BIN / "python"), str(HERE / "mock_upstream.py"), "--port", str(mock_port)], LOAD_CORE
        )
        wait_ready(mock, mock_port, "/healthz", 30)
        targets = _targets(names, opts.tree, f"http://127.0.0.1:{mock_port}", work)
        running = []
        for name, target, port in targets:  # all started once, then measured in turn each round
            proc = procs.start(name, target.cmd, SERVER_CORE, target.env)
            wait_ready(proc, port, target.health_path, target.ready_timeout)
            run_wrk(f"http://127.0.0.1:{port}", 3, target.client_key)  # warm-up
            running.append((name, target, port, proc))
        for round_ in range(opts.rounds):
            for name, target, port, proc in running:
                wait_idle(proc.pid)
                before = cpu_seconds(proc.pid)
                result = run_wrk(f"http://127.0.0.1:{port}", opts.seconds, target.client_key)
                time.sleep(0.5)  # what the request left to do (a ledger flush) counts too
                spent = cpu_seconds(proc.pid) - before
                if result["errors"] or not result["requests"]:
                    raise RuntimeError(f"{name}: {result['errors']:.0f} errors in round {round_ + 1}")
                per_call.setdefault(name, []).append(spent / result["requests"] * 1e6)
                rps.setdefault(name, []).append(result["rps"])
                print(f"  round {round_ + 1} {name}: {per_call[name][-1]:,.1f} us/call, {result['rps']:,.0f} req/s")
    except KeyboardInterrupt:
        return 130
    finally:
        procs.stop_all()
    base = statistics.median(per_call["passthrough"]) if "passthrough" in per_call else None
    print(f"\nserver CPU per call, median of {opts.rounds} rounds ({opts.seconds:g} s wrk runs, 64 connections):")
    for name, values in per_call.items():
        median = statistics.median(values)
        ratio = f"{median / base:5.2f}x passthrough" if base else ""
        spread = f"{min(values):,.1f}-{max(values):,.1f}"
        speed = statistics.median(rps[name])
        print(f"  {name:<20} {median:8,.1f} us/call  (runs {spread})  {ratio}  {speed:,.0f} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
