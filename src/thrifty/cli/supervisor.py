"""The supervisor of ``thrifty serve --workers N``: N worker processes forked from it on one port
(each on a listening socket of its own with SO_REUSEPORT, the kernel spreading connections over
them; or all on one socket the supervisor listens on); a worker that dies is replaced; signals
are passed on. The supervisor serves nothing itself.

- SIGTERM / SIGINT: the workers are told to drain (SIGTERM): each stops accepting, finishes what it
  has in flight up to the drain timeout, flushes its ledger and exits. The supervisor closes the
  socket it holds at once (connections are refused, not queued for nobody) and exits 0 once every
  worker has exited cleanly; one still running well past the drain timeout is killed (exit 1). A
  second SIGINT tells the workers to stop waiting.
- SIGHUP: the config file is checked here first (``check``): a bad one is refused, every problem
  logged, and nothing changes anywhere; a good one is what workers started from then on get, and
  SIGHUP goes on to each worker, which reloads (see ``thrifty.gateway.serving``). A worker still
  starting gets it once it is ready.
- A worker's ``POST /admin/reload`` reloads that worker, which then writes ``reload PID`` on the
  channel: the supervisor checks the file and reloads the others.

Workers report on a pipe, one line each: ``ready PID`` once listening, ``reload PID`` as above.
A worker that dies is started again at once; one that keeps dying within ``_STEADY_S`` of its
start is started again after a growing pause (up to ``_MAX_PAUSE_S``). A worker that fails to
start before any has ever been ready means the setup is broken: the supervisor stops (exit 1).

Workers are forked, not spawned: the price catalogue and the tokenizers' vocabularies, loaded once
here, are shared copy-on-write (the garbage collector is frozen before forking, so it does not
touch, and so copy, their pages).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Notify", "Supervisor"]

log = logging.getLogger("thrifty.gateway")

Notify = Callable[[str], None]
"""What a child calls to tell the supervisor something (``"ready"``, ``"reload"``)."""

STARTUP_FAILURE = 3
"""A worker's exit status when its gateway failed to start (uvicorn's)."""

_STEADY_S = 10.0
_MAX_PAUSE_S = 30.0
_KILL_GRACE_S = 30.0
"""How long past the drain timeout a worker may take to flush its ledger and exit before it is killed."""


@dataclass(eq=False)
class _Child:
    kind: str
    slot: int
    pid: int
    started: float
    ready: bool = False
    stale: bool = False
    """Forked before the last reload and not yet ready: it gets SIGHUP once it is."""
    told: bool = False
    """Told to stop (the helper, once the workers are gone)."""


class Supervisor:
    def __init__(
        self,
        workers: int,
        start_worker: Callable[[Notify], None],
        *,
        drain_timeout: float,
        check: Callable[[], bool] | None,
        start_helper: Callable[[Notify], None] | None = None,
        held: list[object] | None = None,
    ) -> None:
        """``start_worker(notify)`` runs in each worker (it returns when the worker is done);
        ``start_helper``: one more child that the workers need (the demo's simulator), stopped
        after them. ``check``: reads the config file again, True when it is good (None: there is
        no file). ``held``: objects with ``close()`` (the listening socket) to close when stopping."""
        self._workers = workers
        self._targets = {"worker": start_worker, "helper": start_helper}
        self._drain_timeout = drain_timeout
        self._check = check
        self._held = held or []
        self._children: dict[int, _Child] = {}
        self._due: list[tuple[float, str, int]] = []
        self._strikes: dict[tuple[str, int], int] = {}
        self._signals: list[int] = []
        self._stopping = False
        self._deadline = 0.0
        self._clean = True
        self._ever_ready = False
        self._announced = False
        self._buffer = b""
        self._wake = (-1, -1)
        self._channel = (-1, -1)

    # --- the supervisor's loop -------------------------------------------------------------------

    def run(self) -> int:
        self._wake = _pipe()
        self._channel = _pipe()
        signal.set_wakeup_fd(self._wake[1])
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        if self._targets["helper"] is not None:
            self._fork("helper", 0)
        for slot in range(self._workers):
            self._fork("worker", slot)
        while self._children or not self._stopping:
            self._reap()
            self._handle_signals()
            self._read_channel()
            now = time.monotonic()
            if self._stopping:
                self._stop_helper_when_alone()
                if self._children and now > self._deadline:
                    for child in self._children.values():
                        log.error("%s %d still running well past the drain timeout: killed", child.kind, child.pid)
                        _signal(child.pid, signal.SIGKILL)
                    self._clean = False
                    self._deadline = now + 5.0
            else:
                self._start_due(now)
            timeout = 1.0
            if self._due and not self._stopping:
                timeout = max(0.0, min(timeout, min(due for due, _, _ in self._due) - now))
            with contextlib.suppress(InterruptedError):
                select.select([self._wake[0], self._channel[0]], [], [], timeout)
        signal.set_wakeup_fd(-1)
        return 0 if self._clean else 1

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake[0], 512):
                pass
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                if not self._stopping:
                    self._begin_stop(signal.Signals(signum).name)
                elif signum == signal.SIGINT:
                    log.warning("second interrupt: workers stop waiting for requests in flight")
                    for child in self._of_kind("worker"):
                        _signal(child.pid, signal.SIGINT)
            elif signum == signal.SIGHUP and not self._stopping:
                self._reload(exclude=None, reason="SIGHUP")

    def _begin_stop(self, why: str) -> None:
        log.info("%s: draining %d worker(s) (up to %g s)", why, len(self._of_kind("worker")), self._drain_timeout)
        self._stopping = True
        self._deadline = time.monotonic() + self._drain_timeout + _KILL_GRACE_S
        self._due.clear()
        for held in self._held:
            with contextlib.suppress(Exception):
                held.close()  # type: ignore[attr-defined]
        for child in self._of_kind("worker"):
            _signal(child.pid, signal.SIGTERM)

    def _stop_helper_when_alone(self) -> None:
        if not self._of_kind("worker"):
            for child in self._of_kind("helper"):
                if not child.told:
                    child.told = True
                    _signal(child.pid, signal.SIGTERM)

    def _reload(self, exclude: int | None, reason: str) -> None:
        if self._check is None:
            log.warning("reload (%s): the demo's config is built in; there is no file to reload", reason)
            return
        if not self._check():
            return  # the check logged every problem; the workers keep what they run
        for child in self._of_kind("worker"):
            if child.pid == exclude:
                continue
            if child.ready:
                _signal(child.pid, signal.SIGHUP)
            else:
                child.stale = True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._children.pop(pid, None)
            if child is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self._stopping:
                log.info("%s %d exited (status %d)", child.kind, pid, code)
                self._clean = self._clean and code == 0
                continue
            if child.kind == "worker" and code == STARTUP_FAILURE and not self._ever_ready:
                log.error("worker %d failed to start (status %d): stopping", pid, code)
                self._clean = False
                self._begin_stop("a worker failed to start")
                continue
            strikes = self._strikes.get((child.kind, child.slot), 0)
            strikes = strikes + 1 if time.monotonic() - child.started < _STEADY_S else 0
            self._strikes[(child.kind, child.slot)] = strikes
            pause = 0.0 if strikes <= 1 else min(0.5 * 2 ** (strikes - 1), _MAX_PAUSE_S)
            log.warning("%s %d exited (status %d): starting another in %g s", child.kind, pid, code, pause)
            self._due.append((time.monotonic() + pause, child.kind, child.slot))

    def _start_due(self, now: float) -> None:
        due = [entry for entry in self._due if entry[0] <= now]
        self._due = [entry for entry in self._due if entry[0] > now]
        for _, kind, slot in due:
            self._fork(kind, slot)

    def _read_channel(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while chunk := os.read(self._channel[0], 4096):
                self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            what, _, pid_text = line.decode("ascii", "replace").partition(" ")
            child = self._children.get(int(pid_text)) if pid_text.isdigit() else None
            if child is None:
                continue
            if what == "ready":
                child.ready = True
                self._ever_ready = True
                if child.stale and not self._stopping:
                    child.stale = False
                    _signal(child.pid, signal.SIGHUP)
                workers = self._of_kind("worker")
                if self._announced:
                    log.info("worker %d ready", child.pid)
                elif len(workers) == self._workers and all(w.ready for w in workers):
                    self._announced = True
                    log.info("%d workers ready (pids %s)", len(workers), ", ".join(str(w.pid) for w in workers))
            elif what == "reload" and not self._stopping:
                self._reload(exclude=child.pid, reason=f"POST /admin/reload on worker {child.pid}")

    def _of_kind(self, kind: str) -> list[_Child]:
        return [child for child in self._children.values() if child.kind == kind]

    # --- a child ---------------------------------------------------------------------------------

    def _fork(self, kind: str, slot: int) -> None:
        target = self._targets[kind]
        assert target is not None
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                self._become_child()
                target(self._notify)
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            except BaseException:
                log.exception("%s %d failed", kind, os.getpid())
            finally:
                for handler in logging.getLogger().handlers:
                    with contextlib.suppress(Exception):
                        handler.flush()
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        self._children[pid] = _Child(kind, slot, pid, time.monotonic())

    def _become_child(self) -> None:
        """Nothing of the supervisor's signal handling stays: default actions until the worker's
        loop installs its own, except SIGHUP (ignored until then, rather than ending the worker)."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for fd in (*self._wake, self._channel[0]):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _notify(self, what: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._channel[1], f"{what} {os.getpid()}\n".encode())


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    for fd in (read, write):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        os.set_inheritable(fd, False)
    return read, write


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
