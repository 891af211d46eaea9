"""``thrifty serve --workers N`` and Prometheus: prometheus_client's multiprocess mode, with a
directory of this run's own.

The mode is chosen by prometheus_client when it is first imported (``PROMETHEUS_MULTIPROC_DIR``),
so the supervisor sets the variable before anything imports it; the workers it forks inherit it
and keep their values in memory-mapped files there, and a scrape of any worker sums them all. A
fresh directory per run: files left by a previous run would be added to this one's figures (the
documented pitfall of the mode). A worker that dies and is replaced leaves its file: its counts
stay in the totals, as counters should. Removed when the supervisor exits (``atexit``: the
forked workers leave by ``os._exit``, which runs no exit handlers, so only the supervisor does)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sys
import tempfile

log = logging.getLogger("thrifty.gateway")

__all__ = ["ENV", "cleanup", "prepare"]

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int, metrics_enabled: bool) -> str | None:
    """Before the runtime is built: the directory made for this run (None: one process, or no
    metrics, or a directory the user set themselves, which is theirs to manage)."""
    if workers <= 1 or not metrics_enabled or os.environ.get(ENV):
        return None
    if "prometheus_client" in sys.modules:  # too late to switch its mode: say so, not silently wrong
        log.warning("metrics: prometheus_client was loaded early; each worker's /metrics shows its own figures")
        return None
    directory = tempfile.mkdtemp(prefix="thrifty-metrics-")
    os.environ[ENV] = directory
    owner = os.getpid()
    atexit.register(lambda: cleanup(directory) if os.getpid() == owner else None)
    return directory


def cleanup(directory: str | None) -> None:
    if directory is None:
        return
    if os.environ.get(ENV) == directory:
        del os.environ[ENV]
    with contextlib.suppress(OSError):
        shutil.rmtree(directory)
