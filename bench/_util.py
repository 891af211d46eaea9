"""Timing helpers shared by the benchmarks: repeat, take the median, compare in the same run."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence


def per_call_seconds(fn: Callable[[], object], *, calls: int, repeats: int = 7) -> float:
    """Median over ``repeats`` runs of the mean time of one call in a run of ``calls``."""
    fn()  # warm up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def interleaved(
    a: Callable[[], object], b: Callable[[], object], *, calls: int, rounds: int = 9
) -> tuple[float, float, float]:
    """Time ``a`` and ``b`` in alternation (A B A B ...) so drift in machine speed hits both alike.
    Returns (median seconds per call of a, of b, median of the per-round ratios a/b)."""
    a()
    b()
    ta, tb, ratios = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            a()
        ma = (time.perf_counter() - start) / calls
        start = time.perf_counter()
        for _ in range(calls):
            b()
        mb = (time.perf_counter() - start) / calls
        ta.append(ma)
        tb.append(mb)
        ratios.append(ma / mb)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def fmt_time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


def free_port() -> int:
    """A port on loopback that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 60) -> None:
    """Until ``url`` answers 200 (a server a benchmark started); exits the benchmark if it never does."""
    import httpx2

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stop_all(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """Ask every process to stop, then wait for each (they shut down side by side)."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=timeout)
