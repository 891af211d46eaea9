"""Processes the benchmark starts (pinned, each in its own session, always stopped) and what /proc
says about them: resident memory and CPU time of a process tree, and other processes' CPU use."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

# --- processes -----------------------------------------------------------------------------------


class Processes:
    """Everything this run starts, each in its own session so it can be stopped with its children."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, cmd: list[str], core: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            ["taskset", "-c", core, *cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=self.logs,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError):  # stragglers left in the group
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc, grace=5.0)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], port: int, path: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before it was ready")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return time.monotonic() - start
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"not ready on GET {path} after {timeout:.0f} s")


# --- /proc: memory and CPU of a process tree --------------------------------------------------------


def _tree(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of the process and all its descendants, in MB (shared pages count per process)."""
    total_kb = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def cpu_seconds(pid: int) -> float:
    ticks = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float = 120.0) -> float:
    """Wait until the server uses < 5% of a core (e.g. it is done with a backlog a test left)."""
    start = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - start < timeout:
        time.sleep(1.0)
        now = cpu_seconds(pid)
        if now - last < 0.05:
            break
        last = now
    return time.monotonic() - start


@contextlib.contextmanager
def sampling_rss(pid: int, every: float, samples: list[tuple[float, float]]) -> Iterator[None]:
    stop = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not stop.wait(every):
            samples.append((time.monotonic() - t0, rss_mb(pid)))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class OthersCpu:
    """CPU time used by processes this run did not start (other work on the shared machine), in
    cores, over a phase: busy time from /proc/stat minus ours (servers, mock, this script, wrk)."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.start = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float]:
        user, nice, system = (int(x) for x in Path("/proc/stat").read_text().split(maxsplit=4)[1:4])
        own = sum(cpu_seconds(p.pid) for p in self.procs.procs)
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        own += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
        return time.monotonic(), (user + nice + system) / os.sysconf("SC_CLK_TCK"), own

    def cores(self) -> float:
        t1, busy1, own1 = self._snapshot()
        t0, busy0, own0 = self.start
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / max(t1 - t0, 1e-9)
