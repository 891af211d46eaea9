"""Gateway benchmark: thrifty against a passthrough floor and the LiteLLM proxy, in one run.

Run: .venv/bin/python bench/gateway/run.py [--quick] [--targets thrifty,passthrough,litellm]
                                           [--soak-seconds N] [--json FILE]

The mock upstream runs on core 1, each gateway (one worker) on core 0, this script and its load
generators on core 1. Per target: (a) sequential added latency against the upstream hit directly,
in alternation; (b) max throughput with wrk (closed loop); (c) fixed 200 and 500 req/s, open loop,
coordinated-omission-corrected; (d) resident memory of the server's process tree before, during and
after load; (e) with --soak-seconds, RSS every 10 s over a run at 200 req/s. Every figure and ratio
printed comes from this run. See README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV_BIN = REPO / ".venv" / "bin"
LITELLM_ENV = Path(os.environ.get("LITELLM_ENV", "/tmp/thrifty-bench-litellm"))
SERVER_CORE, LOAD_CORE = "0", "1"
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
from procs import OthersCpu, Processes, free_port, rss_mb, sampling_rss, wait_idle, wait_ready  # noqa: E402
from report import report  # noqa: E402

# --- targets: how to start each gateway ----------------------------------------------------------


@dataclass
class Target:
    name: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    health_path: str = "/healthz"
    client_key: str = "sk-bench"  # sent as "Authorization: Bearer ..."
    ready_timeout: float = 60.0
    after: Callable[[], dict[str, Any]] | None = None  # extra facts once the server has stopped


def thrifty_target(port: int, upstream: str, work: Path) -> Target:
    """`thrifty serve` with bench/gateway/thrifty.yaml, rendered for this run's upstream and a
    fresh SQLite ledger. Expects GET /healthz to answer 200 once ready."""
    ledger = work / "thrifty" / "ledger.db"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    text = (HERE / "thrifty.yaml").read_text()
    text = text.replace("http://127.0.0.1:19100", upstream).replace("/tmp/thrifty-bench/ledger.db", str(ledger))
    config = work / "thrifty" / "thrifty.yaml"
    config.write_text(text)
    env = {"THRIFTY_BENCH_UPSTREAM_KEY": "sk-mock", "THRIFTY_HOME": str(work / "thrifty" / "home")}
    cmd = [str(VENV_BIN / "thrifty"), "serve", "--config", str(config), "--port", str(port)]
    return Target("thrifty", cmd, env, after=lambda: {"ledger_rows": _count_rows(ledger)})


def passthrough_target(port: int, upstream: str, work: Path) -> Target:
    cmd = [str(VENV_BIN / "python"), str(HERE / "passthrough.py"), "--port", str(port), "--upstream", upstream]
    return Target("passthrough", cmd)


def litellm_target(port: int, upstream: str, work: Path) -> Target:
    if not (LITELLM_ENV / "bin" / "litellm").exists():
        subprocess.run(["bash", str(HERE / "litellm_env.sh")], check=True)
    env = {
        "MOCK_UPSTREAM_BASE": upstream + "/v1",
        "MOCK_UPSTREAM_KEY": "sk-mock",
        "LITELLM_MASTER_KEY": "sk-bench-master",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",  # also turns off uvicorn's access log: LiteLLM at its best
    }
    cmd = [
        str(LITELLM_ENV / "bin" / "litellm"),
        "--config",
        str(HERE / "litellm.yaml"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    return Target(
        "litellm", cmd, env, health_path="/health/liveliness", client_key="sk-bench-master", ready_timeout=180.0
    )


def thrifty_quiet_target(port: int, upstream: str, work: Path) -> Target:
    """thrifty without its access log (``--no-access-log``): what the one line a request costs."""
    target = thrifty_target(port, upstream, work / "quiet")
    return Target("thrifty-quiet", [*target.cmd, "--no-access-log"], target.env, after=target.after)


TARGETS = {
    "thrifty": thrifty_target,
    "thrifty-quiet": thrifty_quiet_target,
    "passthrough": passthrough_target,
    "litellm": litellm_target,
}


def _count_rows(db: Path) -> int | None:
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM ledger").fetchone()[0])
        except sqlite3.Error:
            return None


# --- measurements -----------------------------------------------------------------------------------


def run_wrk(url: str, seconds: float, key: str, connections: int = 64) -> dict[str, float]:
    cmd = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(HERE / "chat.lua"),
        url,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, "BENCH_API_KEY": key}, timeout=seconds + 60
    ).stdout

    def grab(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else 0.0

    errors = grab(r"Non-2xx or 3xx responses: (\d+)") + sum(
        int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out)
    )
    return {"rps": grab(r"Requests/sec:\s+([\d.]+)"), "requests": grab(r"(\d+) requests in"), "errors": errors}


def wrk_runs(url: str, key: str, opts: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    """The median of ``opts.wrk_runs`` wrk runs, after a 3 s warm-up."""
    run_wrk(url, 3, key)
    runs = []
    for _ in range(opts.wrk_runs):
        others = OthersCpu(procs)
        runs.append(run_wrk(url, opts.wrk_seconds, key) | {"others_cpu": others.cores()})
    runs.sort(key=lambda r: r["rps"])
    return runs[len(runs) // 2] | {"runs_rps": [r["rps"] for r in runs]}


def rate_runs(
    url: str,
    rate: int,
    opts: argparse.Namespace,
    procs: Processes,
    pid: int | None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The median (by p99) of ``opts.rate_runs`` fixed-rate runs; one run if the target cannot keep up."""
    runs = []
    for _ in range(opts.rate_runs):
        if pid is not None:
            wait_idle(pid)
        others = OthersCpu(procs)
        result = loadgen.run_fixed_rate(url, rate, opts.rate_seconds, headers=headers)
        runs.append(result.as_dict() | {"others_cpu": others.cores()})
        print(f"    {rate}/s: p99 {result.p99_ms:,.2f} ms, achieved {result.achieved:,.1f}/s", flush=True)
        if result.incomplete:
            break  # it cannot keep up; more runs would only say so again
    runs.sort(key=lambda r: r["p99_ms"])
    return runs[len(runs) // 2] | {"runs_p99_ms": [r["p99_ms"] for r in runs]}


def alive(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """A server that died during a test invalidates it (its log is kept)."""
    if proc.poll() is not None:
        raise RuntimeError(f"the server exited during the tests (status {proc.returncode})")
    return proc


def measure_target(
    target: Target,
    port: int,
    mock_url: str,
    procs: Processes,
    opts: argparse.Namespace,
    direct: dict[str, Any],
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    headers = {**loadgen.HEADERS, "Authorization": f"Bearer {target.client_key}"}
    res: dict[str, Any] = {}
    proc = procs.start(target.name, target.cmd, SERVER_CORE, target.env)
    try:
        res["startup_s"] = wait_ready(proc, port, target.health_path, target.ready_timeout)
        loadgen.sequential({"t": url}, 20, warmup=0, headers={"t": headers})  # real answers, or fail
        time.sleep(1.0)
        res["rss_idle_mb"] = rss_mb(proc.pid)
        during: list[tuple[float, float]] = []
        with sampling_rss(proc.pid, 0.5, during):
            print(f"  [{target.name}] sequential latency, {opts.seq} requests each way", flush=True)
            others = OthersCpu(procs)
            seq = loadgen.sequential({"direct": mock_url, target.name: url}, opts.seq, headers={target.name: headers})
            res["seq_others_cpu"] = others.cores()
            for q in (50, 99):
                res[f"seq_direct_p{q}_ms"] = loadgen.percentile(seq["direct"], q) * 1e3
                res[f"seq_p{q}_ms"] = loadgen.percentile(seq[target.name], q) * 1e3
                res[f"seq_added_p{q}_ms"] = res[f"seq_p{q}_ms"] - res[f"seq_direct_p{q}_ms"]
            print(
                f"  [{target.name}] max throughput: wrk, 64 connections, {opts.wrk_runs} x {opts.wrk_seconds} s",
                flush=True,
            )
            res["wrk"] = wrk_runs(url, target.client_key, opts, procs)
            alive(proc)
            for rate in opts.rates:
                print(f"  [{target.name}] fixed {rate} req/s, {opts.rate_runs} x {opts.rate_seconds} s", flush=True)
                r = rate_runs(url, rate, opts, procs, proc.pid, headers)
                alive(proc)
                res[f"rate{rate}"] = r | {"added_p99_ms": r["p99_ms"] - direct[f"rate{rate}"]["p99_ms"]}
        res["rss_peak_mb"] = max((mb for _, mb in during), default=res["rss_idle_mb"])
        wait_idle(proc.pid)
        time.sleep(2.0)
        res["rss_after_mb"] = rss_mb(alive(proc).pid)
        if opts.soak_seconds:
            res["soak"] = soak(target, proc, url, headers, res.get("rate200"), opts.soak_seconds)
            alive(proc)
    finally:
        procs.stop(proc)
    if target.after:
        res.update(target.after())
    return res


def soak(
    target: Target,
    proc: subprocess.Popen[bytes],
    url: str,
    headers: dict[str, str],
    at200: dict[str, float] | None,
    seconds: float,
) -> dict[str, Any]:
    if at200 and (at200["achieved"] < 0.95 * 200 or at200["incomplete"]):
        return {"skipped": "does not sustain 200 req/s"}
    print(f"  [{target.name}] soak: 200 req/s for {seconds:g} s, RSS every 10 s", flush=True)
    samples: list[tuple[float, float]] = []
    with sampling_rss(proc.pid, 10.0, samples):
        r = loadgen.run_fixed_rate(url, 200, seconds, headers=headers)
    mbs = [mb for _, mb in samples] or [rss_mb(proc.pid)]
    first, last = mbs[0], mbs[-1]
    return {
        "first_mb": first,
        "last_mb": last,
        "max_mb": max(mbs),
        "drift_pct": (last - first) / first * 100,
        "max_growth_pct": (max(mbs) - first) / first * 100,
        "samples": samples,
        "rate": r.as_dict(),
    }


def run_all(
    names: list[str], opts: argparse.Namespace, procs: Processes, work: Path, results: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Start the mock upstream, measure it alone, then each target in turn; fills ``results``."""
    mock_port = free_port()
    mock = procs.start(
        "mock_upstream", [str(VENV_BIN / "python"), str(HERE / "mock_upstream.py"), "--port", str(mock_port)], LOAD_CORE
    )
    wait_ready(mock, mock_port, "/healthz", 30)
    mock_url = f"http://127.0.0.1:{mock_port}"
    print(f"mock upstream on {mock_url} (core {LOAD_CORE}); logs in {work}", flush=True)
    print("  [direct] upstream alone: wrk and fixed rates (the floor of the load generators)", flush=True)
    direct: dict[str, Any] = {"wrk": run_wrk(mock_url, 5, "sk-bench")}
    for rate in opts.rates:
        direct[f"rate{rate}"] = rate_runs(mock_url, rate, opts, procs, None)
    for name in names:
        port = free_port()
        print(f"{name}: starting on 127.0.0.1:{port} (core {SERVER_CORE})", flush=True)
        try:
            target = TARGETS[name](port, mock_url, work)
            results[name] = measure_target(target, port, mock_url, procs, opts, direct)
        except (RuntimeError, OSError, subprocess.SubprocessError, http.client.HTTPException) as error:
            print(f"  [{name}] FAILED: {error}\n{procs.log_tail(name)}", flush=True)
            results[name] = {"error": str(error)}
    return direct


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# --- main -------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, no soak (a few minutes)")
    parser.add_argument("--targets", default="thrifty,passthrough,litellm")
    parser.add_argument("--soak-seconds", type=float, help="default: 600, or 0 (off) with --quick")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the logs and ledger (kept anyway on failure)")
    opts = parser.parse_args()
    names = [n.strip() for n in opts.targets.split(",") if n.strip()]
    if unknown := [n for n in names if n not in TARGETS]:
        parser.error(f"unknown targets: {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    # sequential requests; wrk runs x seconds; fixed-rate runs x seconds (the median run is reported)
    opts.seq, opts.wrk_runs, opts.wrk_seconds, opts.rate_runs, opts.rate_seconds = (
        (500, 1, 8, 1, 10) if opts.quick else (2000, 3, 10, 3, 20)
    )
    opts.rates = [200, 500]
    if opts.soak_seconds is None:
        opts.soak_seconds = 0 if opts.quick else 600
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # this script and its load generators share the mock's core

    signal.signal(signal.SIGTERM, _interrupt)  # a kill cleans up like Ctrl-C
    work = Path(tempfile.mkdtemp(prefix="thrifty-gateway-bench-"))
    procs = Processes(work)
    results: dict[str, dict[str, Any]] = {}
    try:
        direct = run_all(names, opts, procs, work, results)
    except KeyboardInterrupt:
        print(f"interrupted: stopped everything this run started; logs in {work}", flush=True)
        return 130
    finally:
        procs.stop_all()
    failed = any("error" in r for r in results.values())
    if opts.keep or failed:
        print(f"logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(report(results, direct, opts.rates))
    if opts.json:
        opts.json.write_text(json.dumps({"direct": direct, "targets": results}, indent=2, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
