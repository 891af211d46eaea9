"""Batched ledger writes, off the caller's path, losing nothing.

``submit`` journals the row (one ``write(2)``) and queues it; a background thread inserts queued
rows in batches. When the database is down the rows wait (in memory up to ``max_pending``, past
that only in the journal, replayed from disk once the database is back), so memory stays bounded
through an outage of any length.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from thrifty.core.ledger import LedgerRecord
from thrifty.stores.ledger.base import LedgerStore
from thrifty.stores.ledger.inserter import Inserter, Row
from thrifty.stores.ledger.intents import IntentLog
from thrifty.stores.ledger.journal import Segment, SegmentFactory, encode_rows, read_segment

__all__ = ["LedgerWriter", "WriterStats"]

log = logging.getLogger("thrifty.ledger")


@dataclass(frozen=True, slots=True)
class WriterStats:
    submitted: int
    written: int
    pending: int
    recovered: int
    rejected: int
    spilling: bool
    last_error: str | None


class LedgerWriter:
    def __init__(
        self,
        store: LedgerStore,
        *,
        journal_dir: Path | None,
        batch_size: int = 2000,
        flush_interval: float = 0.05,
        max_pending: int = 50_000,
        segment_rows: int = 20_000,
        retry_max_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._factory = SegmentFactory(journal_dir) if journal_dir is not None else None
        self._intents = IntentLog(journal_dir, self._factory.owner) if self._factory and journal_dir else None
        self._journal_dir = journal_dir
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._segment_rows = segment_rows
        self._retry_max = retry_max_seconds
        self._cond = threading.Condition()
        self._queue: deque[tuple[Row, Segment | None]] = deque()
        self._segment: Segment | None = None
        self._open: list[Segment] = []
        self._replay: deque[Segment] = deque()
        self._spilling = False
        self._submitted = 0
        self._written = 0
        self._recovered = 0
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._inserter = Inserter(
            store,
            journal_dir,
            batch_size=batch_size,
            retry_max_seconds=retry_max_seconds,
            stopping=lambda: self._stopping,
        )

    # -- the caller's side ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="thrifty-ledger-writer", daemon=True)
            self._thread.start()

    def submit(self, record: LedgerRecord) -> None:
        """Record a call. Returns once the row is journaled; never waits for the database."""
        self.submit_rows([record.to_values()])

    def submit_many(self, records: Sequence[LedgerRecord]) -> None:
        """Record several calls with one journal write (batch results, imports)."""
        self.submit_rows([record.to_values() for record in records])

    def intend(self, record: LedgerRecord) -> None:
        """Journal the row a call gets should this process die before the call's final row (same
        id) is submitted (see ``intents``). Without a journal there is nothing to recover from."""
        if self._intents is None:
            return
        row = record.to_values()
        with self._cond:
            if self._closed:
                raise RuntimeError("the ledger writer is closed")
            self._intents.intend(row)

    def submit_rows(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        data = encode_rows(rows) if self._factory is not None else b""
        with self._cond:
            if self._closed:
                raise RuntimeError("the ledger writer is closed")
            segment = self._segment_for_append()
            if segment is not None:
                segment.append_encoded(data, len(rows))
                if self._intents is not None:
                    self._intents.complete(rows)
            self._submitted += len(rows)
            if self._spilling:
                assert segment is not None  # spilling needs a journal
                segment.spilled = True
            else:
                self._queue.extend((row, segment) for row in rows)
                if self._factory is not None and len(self._queue) >= self._max_pending:
                    log.warning("ledger: %d rows wait for the database; new rows wait on disk", len(self._queue))
                    self._rotate()
                    self._spilling = True
            # Only a full batch wakes the writer: a wake-up per row would take the GIL from the
            # serving thread at the moment it answers. Otherwise the writer polls every interval.
            if len(self._queue) >= self._batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row submitted so far is in the database. False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._cond.notify_all()
            while self._written < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush what can be flushed in ``timeout``; rows still unwritten stay in the journal and are
        replayed by the next writer that starts on the same journal directory."""
        if self._closed:
            return
        flushed = self.flush(timeout) if self._thread is not None else False
        with self._cond:
            self._closed = True
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(timeout, 1.0))
        with self._cond:
            if self._segment is not None:
                self._rotate()
            for segment in self._open:
                if segment.done:
                    segment.release()
                else:
                    segment.detach()
            self._open.clear()
            if self._intents is not None:
                self._intents.close()  # calls still in flight: interrupted, for the next writer
        if not flushed and self._submitted > self._written:
            where = f"kept in {self._journal_dir}" if self._factory else "LOST (no journal configured)"
            log.error("ledger: %d rows not written at close: %s", self._submitted - self._written, where)

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(
                submitted=self._submitted,
                written=self._written,
                pending=self._submitted - self._written,
                recovered=self._recovered,
                rejected=self._inserter.rejected,
                spilling=self._spilling,
                last_error=self._inserter.last_error,
            )

    # -- segments (called with the lock held) --------------------------------------------------

    def _segment_for_append(self) -> Segment | None:
        if self._factory is None:
            return None
        if self._segment is not None and self._segment.rows >= self._segment_rows:
            self._rotate()
        if self._segment is None:
            self._segment = self._factory.new()
            self._segment.spilled = self._spilling
            self._open.append(self._segment)
        return self._segment

    def _rotate(self) -> None:
        segment = self._segment
        if segment is None:
            return
        segment.close_for_append()
        self._segment = None
        if segment.spilled:
            self._replay.append(segment)

    def _release_done(self) -> None:
        for segment in [s for s in self._open if s.done]:
            self._open.remove(segment)
            segment.release()

    # -- the background thread -----------------------------------------------------------------

    def _run(self) -> None:
        self._recover_orphans()
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                if not self._write_queued(batch):
                    return
                continue
            with self._cond:
                segment = self._replay.popleft() if self._replay else None
            if segment is not None and not self._replay_segment(segment):
                return

    def _next_batch(self) -> list[tuple[Row, Segment | None]] | None:
        """Up to ``batch_size`` queued rows; [] when only replay work is left; None to stop."""
        with self._cond:
            while not self._queue and not self._replay:
                if self._stopping:
                    return None
                if self._segment is not None and self._segment.written >= self._segment.rows and not self._spilling:
                    self._rotate()  # idle: close the segment so the journal is empty at rest
                    self._release_done()
                self._cond.wait(self._flush_interval)
            if self._queue and len(self._queue) < self._batch_size and not self._stopping:
                self._cond.wait(self._flush_interval)  # let a batch gather
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            if self._spilling and len(self._queue) < self._max_pending // 2:
                self._spilling = False
                self._rotate()
            return batch

    def _write_queued(self, batch: list[tuple[Row, Segment | None]]) -> bool:
        if not self._insert_reliably([row for row, _ in batch]):
            return False
        with self._cond:
            for _, segment in batch:
                if segment is not None:
                    segment.written += 1
            self._written += len(batch)
            self._release_done()
            self._cond.notify_all()
        return True

    def _replay_segment(self, segment: Segment) -> bool:
        rows = list(read_segment(segment.path))
        for start in range(0, len(rows), self._batch_size):
            if not self._insert_reliably(rows[start : start + self._batch_size]):
                return False
        with self._cond:
            self._written += segment.rows
            segment.written = segment.rows
            segment.spilled = False
            self._release_done()
            self._cond.notify_all()
        return True

    def _recover_orphans(self) -> None:
        recovered = self._inserter.replay_orphans()
        if recovered:
            log.info("ledger: recovered %d rows from journal segments of writers that died", recovered)
            with self._cond:
                self._recovered += recovered

    def _insert_reliably(self, rows: Sequence[Row]) -> bool:
        return self._inserter.insert(rows)
