"""Putting rows into the ledger database reliably: retried through outages, bad rows set aside,
journal segments replayed. Shared by the in-process writer thread and the sidecar process."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thrifty.core.ledger import LEDGER_COLUMNS
from thrifty.core.retry import backoff_delay
from thrifty.stores.ledger.base import LedgerStore
from thrifty.stores.ledger.intents import orphaned_intents
from thrifty.stores.ledger.journal import orphaned_segments, read_segment

_FIRST_PAUSE_S = 0.05
_MIN_PAUSE_S = 0.01  # full jitter can draw ~0: never spin on a database that is down

__all__ = ["Inserter", "Row"]

log = logging.getLogger("thrifty.ledger")

Row = Sequence[Any]
"""A ledger row as ``LedgerRecord.to_values`` gives it."""


class Inserter:
    def __init__(
        self,
        store: LedgerStore,
        journal_dir: Path | None,
        *,
        batch_size: int = 2000,
        retry_max_seconds: float = 5.0,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.journal_dir = journal_dir
        self.batch_size = batch_size
        self.retry_max = retry_max_seconds
        self.stopping = stopping
        self.rejected = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def insert(self, rows: Sequence[Row]) -> bool:
        """Insert, retrying with backoff until the database takes the rows. A row the database
        rejects on its own (not an outage) goes to ``rejected.jsonl`` beside the journal.
        False only when stopping while the database is still down. The pauses are the upstream
        calls' backoff (``core.retry``), jittered: the writers of many workers that lost one
        database come back to it spread out, not all at once."""
        failures = 0
        while True:
            try:
                self.store.insert_rows(rows)
            except Exception as error:
                failures += 1
                self._note_error(error, failures)
                if failures >= 3 and len(rows) > 1 and self._isolate_bad_rows(rows):
                    return True
                if self.stopping() and failures >= 3:
                    return False
                time.sleep(max(_MIN_PAUSE_S, backoff_delay(failures, _FIRST_PAUSE_S, self.retry_max, random.random)))
            else:
                if failures:
                    log.warning("ledger: database writes resumed after %d failed attempts", failures)
                    with self._lock:
                        self.last_error = None
                return True

    def replay_orphans(self) -> int | None:
        """Insert and delete every segment no live writer holds, then the intents files of the
        writers that are gone (see ``intents``): an intent whose final row is in the database
        writes nothing, the others become ``interrupted`` rows. The rows replayed, or None when
        stopping left some in place (they stay for the next replay)."""
        if self.journal_dir is None:
            return 0
        total = 0
        for files in (orphaned_segments, orphaned_intents):
            for path, fd in files(self.journal_dir):
                try:
                    rows = list(read_segment(path))
                    for start in range(0, len(rows), self.batch_size):
                        if not self.insert(rows[start : start + self.batch_size]):
                            return None
                    path.unlink(missing_ok=True)
                    total += len(rows)
                    if rows and files is orphaned_intents:
                        log.info("ledger: %s: %d calls were in flight when their writer stopped", path.name, len(rows))
                finally:
                    os.close(fd)
        return total

    def _isolate_bad_rows(self, rows: Sequence[Row]) -> bool:
        """Row by row: if some rows go in, the others are bad data, not an outage."""
        bad: list[tuple[Row, Exception]] = []
        good = 0
        for row in rows:
            try:
                self.store.insert_rows([row])
                good += 1
            except Exception as error:
                bad.append((row, error))
        if good == 0:
            return False
        for row, problem in bad:
            self._reject(row, problem)
        return True

    def _reject(self, row: Row, error: Exception) -> None:
        log.error("ledger: the database rejected row %s: %s", row[0], error)
        with self._lock:
            self.rejected += 1
        target = (self.journal_dir or Path(".")) / "rejected.jsonl"
        record = {"error": str(error), "row": dict(zip(LEDGER_COLUMNS, row, strict=False))}
        with target.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    def _note_error(self, error: Exception, failures: int) -> None:
        message = f"{type(error).__name__}: {error}"
        with self._lock:
            self.last_error = message
        if failures == 1:
            log.warning("ledger: database write failed, retrying: %s", message)
