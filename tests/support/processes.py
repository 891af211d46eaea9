"""thrifty commands run as real processes (``thrifty serve``, ``thrifty simulate``) for tests that
need several of them, or need to kill one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def thrifty_process(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """``thrifty ARGS`` with its output in ``log``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "thrifty.cli.main", *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, path: str = "/readyz") -> None:
    """Until ``url + path`` answers 200; the log's tail in the error if the process exits first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-3000:]}")
        try:
            if httpx2.get(url + path, timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready: {log.read_text()[-3000:]}")
