"""An idle gateway's ledger path sleeps (issue 14.14): the journal's rotator and the sidecar wake
once a second or so while no row comes, not twenty times a second; a row that comes is still handed
over and written at once (the gateway wakes the sidecar itself)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from thrifty.core.ledger import LedgerRecord
from thrifty.stores.ledger import open_ledger
from thrifty.stores.ledger.journal_writer import JournalWriter
from thrifty.stores.ledger.sidecar import status_path

IDLE_S = 2.5


class CountingEvent(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def _count_rows(url: str) -> int:
    store = open_ledger(url)
    try:
        return store.count()
    finally:
        store.close()


def test_an_idle_writer_and_sidecar_wake_rarely_and_a_row_still_goes_in(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = JournalWriter(tmp_path / "journal", url)
    events = [CountingEvent(), CountingEvent()]
    writer._stop = events[0]
    if hasattr(writer, "_pending"):
        writer._pending = events[1]
    writer.start()
    try:
        writer.submit(LedgerRecord(requested_model="gpt-4o-mini", ts=datetime.now(UTC), request_id="first"))
        assert writer.flush(timeout=20)
        sidecar = writer._sidecar
        assert sidecar is not None
        status = status_path(tmp_path / "journal", sidecar.pid)
        before = sum(e.waits for e in events)
        seen: set[float] = set()
        deadline = time.monotonic() + IDLE_S
        while time.monotonic() < deadline:  # the status file's heartbeat: how often the sidecar writes it
            with contextlib.suppress(OSError, ValueError):
                seen.add(json.loads(status.read_text())["at"])
            time.sleep(0.02)
        wakeups = sum(e.waits for e in events) - before
        # the old rotator woke every 50 ms (about 50 times here), the old sidecar rewrote its status
        # file on every 50 ms pass; now about once a second for the one, on change or every 5 s for the other
        assert wakeups <= 2 * IDLE_S + 1, wakeups
        assert len(seen) <= 2, len(seen)
        writer.submit(LedgerRecord(requested_model="gpt-4o-mini", ts=datetime.now(UTC), request_id="second"))
        assert writer.flush(timeout=20)
        assert _count_rows(url) == 2
    finally:
        writer.close()
