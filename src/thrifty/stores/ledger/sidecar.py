"""The ledger sidecar: a separate process that moves journal segments into the database.

A gateway only appends ledger rows to its journal (one ``write(2)`` a call) and closes a segment
every ``rotate_seconds``; closing it releases its lock, and the sidecar -- which replays every
segment nobody holds -- inserts its rows and deletes it. Inserting into SQLite costs more CPU than
everything else the gateway does for a call, and a writer thread would also contend for the GIL
with the serving thread; in its own process it does neither. The journal is the queue: nothing is
held in memory, an outage of any length only grows files, and a crash of either process loses
nothing (any sidecar that starts later replays what is left).

Run by ``thrifty serve``; by hand: ``python -m thrifty.stores.ledger.sidecar --journal DIR --ledger URL``.

Stopping. Run by a gateway (``--parent-pid``), the sidecar stops when the gateway closes its stdin,
after the gateway's last hand-over, or when the gateway is gone; it ignores SIGINT and SIGTERM,
which a terminal's Ctrl-C and systemd's stop send to the whole process group at once: stopping
then would leave the gateway's last rows to a replacement it would have to start during its own
shutdown. Run by hand, SIGINT or SIGTERM stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from thrifty.core.redact import RedactingFilter, redact_text, url_secrets
from thrifty.stores.ledger.inserter import Inserter

__all__ = ["LEDGER_URL_ENV", "run_sidecar", "status_path"]

LEDGER_URL_ENV = "THRIFTY_SIDECAR_LEDGER_URL"

log = logging.getLogger("thrifty.ledger.sidecar")

_STATUS_EVERY_S = 5.0
"""The status file is rewritten when what it says changes, and at least this often."""


def status_path(journal_dir: Path, pid: int) -> Path:
    return journal_dir / f"sidecar-{pid}.status"


def run_sidecar(
    journal_dir: Path,
    ledger_url: str,
    parent_pid: int | None,
    poll_seconds: float = 0.05,
    idle_poll_seconds: float = 1.0,
) -> int:
    """Replay until told to stop (the parent closes stdin; by hand: SIGTERM or SIGINT) or until the
    parent is gone, then drain and return.

    The parent writes a byte to stdin for each segment it closes, which wakes the loop at once.
    Between wake-ups the journal is scanned every ``poll_seconds`` while segments keep coming, and
    ever less often while none do, up to ``idle_poll_seconds`` (segments of writers that died, or
    of other processes sharing the folder, are found within that)."""
    from thrifty.stores.ledger import open_ledger

    stop = threading.Event()
    wake = threading.Event()
    if parent_pid is None:

        def stop_now(*_: object) -> None:
            stop.set()
            wake.set()

        signal.signal(signal.SIGTERM, stop_now)
        signal.signal(signal.SIGINT, stop_now)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_read_input, args=(stop, wake), name="thrifty-sidecar-stdin", daemon=True).start()
    _use_every_core()
    store = open_ledger(ledger_url)
    inserter = Inserter(store, journal_dir, stopping=stop.is_set)
    status = status_path(journal_dir, os.getpid())
    secrets = url_secrets(ledger_url)  # a driver's error may quote them: not into the status file
    written = 0
    reported: tuple[int, str | None, float] | None = None
    poll = poll_seconds
    try:
        while True:
            wake.clear()
            replayed = inserter.replay_orphans()
            written += replayed or 0
            error = inserter.last_error
            shown = None if error is None else redact_text(error, secrets)
            now = time.monotonic()
            if reported is None or reported[:2] != (written, shown) or now - reported[2] > _STATUS_EVERY_S:
                _write_status(status, written, shown)  # on change, and as a heartbeat: not every pass
                reported = (written, shown, now)
            if stop.is_set() or (parent_pid is not None and not _alive(parent_pid)):
                # One last pass, for the segments the parent closed on its way out.
                final = inserter.replay_orphans()
                written += final or 0
                return 0
            if not replayed:
                wake.wait(poll)
                poll = min(poll * 2, idle_poll_seconds)
            else:
                poll = poll_seconds
    finally:
        status.unlink(missing_ok=True)
        store.close()


def _read_input(stop: threading.Event, wake: threading.Event) -> None:
    """Each byte from the gateway is "a segment is ready"; the end of input is "stop now" (it
    closes our stdin, and so does its death)."""
    with contextlib.suppress(OSError, ValueError):
        while os.read(sys.stdin.fileno(), 4096):  # returns what is there, not a full buffer
            wake.set()
    stop.set()
    wake.set()


def _use_every_core() -> None:
    """A gateway pinned to one core should not also pay for its database writes on that core."""
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, range(os.cpu_count() or 1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return os.getppid() == pid


def _write_status(path: Path, written: int, last_error: str | None) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"written": written, "last_error": last_error, "at": time.time()}))
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thrifty.stores.ledger.sidecar")
    parser.add_argument("--journal", required=True, type=Path)
    parser.add_argument(
        "--ledger", help=f"the ledger URL (default: ${LEDGER_URL_ENV}, which keeps a password out of argv)"
    )
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    ledger = args.ledger or os.environ.get(LEDGER_URL_ENV)
    if not ledger:
        parser.error(f"give --ledger URL or set {LEDGER_URL_ENV}")
    return run_sidecar(args.journal, ledger, args.parent_pid)


if __name__ == "__main__":
    sys.exit(main())
