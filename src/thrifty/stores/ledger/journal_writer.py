"""The gateway's ledger writer: rows go to the journal, a sidecar process puts them in the
database (see ``sidecar``). ``submit`` costs one ``write(2)``; nothing else happens in the
serving process."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from thrifty.core.ledger import LedgerRecord
from thrifty.stores.ledger.inserter import Row
from thrifty.stores.ledger.intents import IntentLog
from thrifty.stores.ledger.journal import Segment, SegmentFactory, encode_rows
from thrifty.stores.ledger.sidecar import LEDGER_URL_ENV, status_path

__all__ = ["JournalWriter"]

log = logging.getLogger("thrifty.ledger")


class JournalWriter:
    def __init__(
        self,
        journal_dir: Path,
        ledger_url: str,
        *,
        rotate_seconds: float = 0.05,
        segment_rows: int = 20_000,
        idle_check_seconds: float = 1.0,
    ) -> None:
        self._dir = journal_dir
        self._url = ledger_url
        self._rotate_seconds = rotate_seconds
        self._idle_check_seconds = idle_check_seconds
        self._pending = threading.Event()
        """Set when the open segment got rows: the rotator hands it over ``rotate_seconds`` later.
        Idle, the rotator sleeps (waking once per ``idle_check_seconds`` to see the sidecar lives)."""
        self._segment_rows = segment_rows
        self._lock = threading.Lock()
        self._factory: SegmentFactory | None = None
        self._intents: IntentLog | None = None
        self._segment: Segment | None = None
        self._closed_paths: list[Path] = []
        self._submitted = 0
        self._sidecar: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._rotator: threading.Thread | None = None
        self.tap: Callable[[LedgerRecord], None] | None = None
        """Shown each record once it is journalled (metrics, spans: ``thrifty.telemetry``). Here,
        not at each place that submits, so what is observed is exactly what the ledger gets."""

    def start(self) -> None:
        self._factory = SegmentFactory(self._dir)
        self._intents = IntentLog(self._dir, self._factory.owner)
        self._sidecar = self._spawn()
        self._rotator = threading.Thread(target=self._rotate_periodically, name="thrifty-journal", daemon=True)
        self._rotator.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            "thrifty.stores.ledger.sidecar",
            "--journal",
            str(self._dir),
            "--parent-pid",
            str(os.getpid()),
        ]
        # The ledger URL may hold a password: by environment, never argv (any local user reads argv).
        # Its stdin is how it is told to stop (see the sidecar's module): closed by ``close``.
        env = {**os.environ, LEDGER_URL_ENV: self._url}
        return subprocess.Popen(command, stdin=subprocess.PIPE, env=env)

    def submit(self, record: LedgerRecord) -> None:
        self.submit_rows([record.to_values()])
        if self.tap is not None:
            self._observe((record,))

    def submit_many(self, records: Sequence[LedgerRecord]) -> None:
        self.submit_rows([record.to_values() for record in records])
        if self.tap is not None:
            self._observe(records)

    def _observe(self, records: Sequence[LedgerRecord]) -> None:
        tap = self.tap
        for record in records:
            try:
                if tap is not None:
                    tap(record)
            except Exception:  # the row is in the journal: telemetry's failure is not the call's
                log.exception("telemetry: could not observe ledger record %s", record.id)

    def intend(self, record: LedgerRecord) -> None:
        """Journal the row a call gets should this process die before the call's final row (same
        id) is submitted: write-ahead, before the call goes upstream (see ``intents``)."""
        row = record.to_values()
        with self._lock:
            if self._intents is None:
                raise RuntimeError("the ledger writer is not started, or is closed")
            self._intents.intend(row)

    def submit_rows(self, rows: Sequence[Row]) -> None:
        data = encode_rows(rows)
        with self._lock:
            if self._factory is None:
                raise RuntimeError("the ledger writer is not started, or is closed")
            segment = self._segment
            if segment is None:
                segment = self._segment = self._factory.new()
            segment.append_encoded(data, len(rows))
            if self._intents is not None:
                self._intents.complete(rows)
            self._submitted += len(rows)
            if not self._pending.is_set():  # an attribute read on the hot path; set once a batch
                self._pending.set()
            if segment.rows >= self._segment_rows:
                self._close_segment()

    def _close_segment(self) -> bool:
        """Hand the current segment to the sidecar (closing it releases its lock); True if there
        was one (then ``_nudge`` the sidecar, outside the lock)."""
        segment = self._segment
        if segment is None:
            return False
        self._segment = None
        self._closed_paths.append(segment.path)
        segment.detach()
        return True

    def _nudge(self) -> None:
        """Tell the sidecar a segment is ready: one byte on its stdin wakes it at once, so it can
        sleep while nothing comes instead of scanning the journal twenty times a second."""
        sidecar = self._sidecar
        if sidecar is not None and sidecar.stdin is not None:
            with contextlib.suppress(OSError, ValueError):  # gone or closing: it replays at start anyway
                sidecar.stdin.write(b".")
                sidecar.stdin.flush()

    def _rotate_periodically(self) -> None:
        while not self._stop.is_set():
            if self._pending.wait(self._idle_check_seconds) and not self._stop.wait(self._rotate_seconds):
                with self._lock:
                    self._pending.clear()
                    closed = self._segment is not None and self._segment.rows > 0 and self._close_segment()
                    self._closed_paths = [p for p in self._closed_paths if p.exists()]
                if closed:
                    self._nudge()
            sidecar = self._sidecar
            if sidecar is not None and sidecar.poll() is not None and not self._stop.is_set():
                log.warning("ledger: the sidecar exited (status %s); starting another", sidecar.returncode)
                self._sidecar = self._spawn()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row submitted so far is in the database. False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            closed = self._close_segment()
            waiting = list(self._closed_paths)
        if closed:
            self._nudge()
        while any(path.exists() for path in waiting):
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Hand over the last rows and stop the sidecar once it has written them (rows it could
        not write stay in the journal for the next start)."""
        self._stop.set()
        self._pending.set()  # wakes the rotator now, not at its next idle check
        if self._rotator is not None:
            self._rotator.join(timeout=5)
        flushed = self.flush(timeout)
        with self._lock:
            self._factory = None
            if self._intents is not None:
                # Calls still in flight now never get their final row: the sidecar's last pass
                # records them as interrupted.
                self._intents.close()
                self._intents = None
        sidecar = self._sidecar
        if sidecar is not None:
            if sidecar.stdin is not None:
                with contextlib.suppress(OSError):
                    sidecar.stdin.close()
            try:
                sidecar.wait(timeout=max(timeout, 5.0))
            except subprocess.TimeoutExpired:
                sidecar.kill()
                sidecar.wait()
        if not flushed:
            log.error("ledger: rows not yet in the database at close are kept in %s", self._dir)

    def health(self) -> str | None:
        """None when ledger writes flow; otherwise what is wrong (rows then wait on disk)."""
        sidecar = self._sidecar
        if sidecar is None or sidecar.poll() is not None:
            return "the ledger sidecar is not running"
        try:
            status = json.loads(status_path(self._dir, sidecar.pid).read_text())
        except (OSError, ValueError):
            return None  # starting: no status yet
        error = status.get("last_error")
        return f"writes failing, rows wait in the journal: {error}" if error else None

    @property
    def submitted(self) -> int:
        return self._submitted
