"""One process serving ASGI apps on sockets it was given, with thrifty's signal handling.

SIGTERM or SIGINT drain: the listening socket closes, idle connections close, requests in flight
(streams included) finish -- up to the drain timeout, after which they are cancelled -- then the
apps' lifespan shutdown runs (the gateway flushes its ledger there) and ``serve`` returns: the
process exits 0. Repeated SIGTERMs change nothing (systemd signals the whole group, and a
supervisor forwards its own); a second SIGINT (Ctrl-C twice) stops waiting for requests in flight.
SIGHUP calls ``on_hangup``. uvicorn's own signal handling is off: it would re-raise the signal
once done, and the process would end by it (status 143) instead of exiting 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import uvicorn

__all__ = ["Served", "run_servers"]

log = logging.getLogger("thrifty.gateway")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the process's handlers are ``run_servers``'


@dataclass(frozen=True)
class Served:
    """An app on a socket, as uvicorn is configured to serve it."""

    config: uvicorn.Config
    sock: socket.socket


def run_servers(
    primary: Served,
    secondary: Sequence[Served] = (),
    *,
    on_drain: Callable[[], None] | None = None,
    on_hangup: Callable[[], None] | None = None,
    on_started: Callable[[], None] | None = None,
    parent_pid: int | None = None,
) -> None:
    """Serve until a signal says stop (see the module). ``secondary`` servers (the demo's simulator)
    stop once the primary has drained: its requests in flight may still need them. ``on_drain``:
    called when draining starts; ``on_started``: once the primary listens; ``parent_pid``: drain if
    that process (a supervisor) goes away."""
    import uvloop

    async def main() -> None:
        server = _Server(primary.config)
        others = [_Server(served.config) for served in secondary]
        loop = asyncio.get_running_loop()
        interrupts = 0

        def stop(signum: int) -> None:
            nonlocal interrupts
            if signum == signal.SIGINT:
                interrupts += 1
                if interrupts > 1:
                    log.warning("second interrupt: not waiting for requests in flight")
                    server.force_exit = True
            if not server.should_exit:
                log.info("draining: no new connections; waiting for requests in flight")
                if on_drain is not None:
                    on_drain()
                server.should_exit = True

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop, signum)
        if on_hangup is not None:
            loop.add_signal_handler(signal.SIGHUP, on_hangup)
        side = [
            asyncio.create_task(other.serve(sockets=[served.sock]))
            for other, served in zip(others, secondary, strict=True)
        ]
        watchers = [asyncio.create_task(_when_started(server, on_started))]
        if parent_pid is not None:
            watchers.append(asyncio.create_task(_watch_parent(parent_pid, lambda: stop(signal.SIGTERM))))
        try:
            await server.serve(sockets=[primary.sock])
        finally:
            for watcher in watchers:
                watcher.cancel()
            for other in others:
                other.should_exit = True
            await asyncio.gather(*side, *watchers, return_exceptions=True)

    uvloop.run(main())


async def _when_started(server: uvicorn.Server, on_started: Callable[[], None] | None) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    if on_started is not None:
        on_started()


async def _watch_parent(parent_pid: int, stop: Callable[[], None]) -> None:
    """A worker whose supervisor died (even by SIGKILL) drains and exits rather than serve on
    unsupervised."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    log.warning("the supervisor (pid %d) is gone: draining", parent_pid)
    stop()
