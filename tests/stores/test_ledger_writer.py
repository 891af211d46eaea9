"""The batched writer loses nothing: not on a crash, not through a database outage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing.rates import Cost
from thrifty.stores.ledger import LedgerStore, LedgerWriter, open_ledger
from thrifty.stores.ledger.sqlite import SQLiteLedger

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def make_record(n: int) -> LedgerRecord:
    return LedgerRecord(requested_model="gpt-4o-mini", ts=T0, request_id=f"r{n}", cost=Cost(output=Decimal("0.001")))


class FlakyStore:
    """A real store that can be switched off (an outage) or made to reject marked rows (bad data)."""

    def __init__(self, inner: LedgerStore) -> None:
        self.inner = inner
        self.down = threading.Event()
        self.attempts = 0

    @property
    def url(self) -> str:
        return self.inner.url

    def migrate(self) -> None:
        self.inner.migrate()

    def insert_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.attempts += 1
        if self.down.is_set():
            raise ConnectionError("database unreachable")
        if any(row[2] == "poison" for row in rows):
            raise ValueError("value out of range")
        self.inner.insert_rows(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteLedger:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert isinstance(ledger, SQLiteLedger)
    return ledger


def journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("ledger-*.jsonl"))


def test_rows_reach_the_store_in_batches_and_the_journal_empties(store: SQLiteLedger, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    writer = LedgerWriter(store, journal_dir=journal, batch_size=100, segment_rows=250)
    writer.start()
    for n in range(1000):
        writer.submit(make_record(n))
    assert writer.flush(timeout=30)
    writer.close()
    assert store.count() == 1000
    assert journal_files(journal) == []
    stats = writer.stats()
    assert (stats.submitted, stats.written, stats.pending) == (1000, 1000, 0)


def test_postgres_backend_through_the_writer(postgres_url: str, tmp_path: Path) -> None:
    ledger = open_ledger(postgres_url)
    writer = LedgerWriter(ledger, journal_dir=tmp_path / "journal", batch_size=64)
    writer.start()
    for n in range(500):
        writer.submit(make_record(n))
    writer.close()
    assert ledger.count() == 500
    (total,) = ledger.totals("model")
    assert total.cost_usd == Decimal("0.5")
    ledger.close()


def test_an_outage_delays_rows_but_loses_none(store: SQLiteLedger, tmp_path: Path) -> None:
    flaky = FlakyStore(store)
    flaky.down.set()
    writer = LedgerWriter(flaky, journal_dir=tmp_path / "journal", batch_size=10, retry_max_seconds=0.05)
    writer.start()
    for n in range(50):
        writer.submit(make_record(n))
    assert not writer.flush(timeout=0.5)
    assert writer.stats().last_error is not None
    assert store.count() == 0
    flaky.down.clear()
    assert writer.flush(timeout=30)
    writer.close()
    assert store.count() == 50
    assert writer.stats().last_error is None


def test_a_long_outage_spills_to_disk_and_keeps_memory_bounded(store: SQLiteLedger, tmp_path: Path) -> None:
    flaky = FlakyStore(store)
    flaky.down.set()
    writer = LedgerWriter(
        flaky, journal_dir=tmp_path / "journal", batch_size=10, max_pending=40, retry_max_seconds=0.05
    )
    writer.start()
    for n in range(500):
        writer.submit(make_record(n))
    assert writer.stats().spilling
    assert len(writer._queue) <= 40  # the rest wait on disk only
    flaky.down.clear()
    assert writer.flush(timeout=30)
    writer.close()
    assert store.count() == 500
    ids = {r.request_id for r in store.records(limit=1000)}
    assert ids == {f"r{n}" for n in range(500)}
    assert journal_files(tmp_path / "journal") == []


def test_a_row_the_database_rejects_is_set_aside_not_retried_forever(store: SQLiteLedger, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    writer = LedgerWriter(FlakyStore(store), journal_dir=journal, batch_size=50, retry_max_seconds=0.01)
    writer.start()
    for n in range(20):
        writer.submit(make_record(n))
    writer.submit(LedgerRecord(requested_model="gpt-4o", ts=T0, request_id="poison"))
    assert writer.flush(timeout=30)
    writer.close()
    assert store.count() == 20
    rejected = [json.loads(line) for line in (journal / "rejected.jsonl").read_text().splitlines()]
    assert [r["row"]["request_id"] for r in rejected] == ["poison"]
    assert "value out of range" in rejected[0]["error"]


def test_closing_during_an_outage_keeps_rows_for_the_next_writer(store: SQLiteLedger, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    flaky = FlakyStore(store)
    flaky.down.set()
    writer = LedgerWriter(flaky, journal_dir=journal, retry_max_seconds=0.01)
    writer.start()
    for n in range(30):
        writer.submit(make_record(n))
    writer.close(timeout=0.3)
    assert store.count() == 0
    assert journal_files(journal)

    successor = LedgerWriter(store, journal_dir=journal)
    successor.start()
    successor.close()
    assert store.count() == 30
    assert successor.stats().recovered == 30
    assert journal_files(journal) == []


CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from thrifty.core.ledger import LedgerRecord
    from thrifty.stores.ledger import LedgerWriter, open_ledger

    store = open_ledger(sys.argv[1])
    # A writer that would only write after a minute: everything is still pending when killed.
    writer = LedgerWriter(store, journal_dir=Path(sys.argv[2]), batch_size=100_000, flush_interval=60)
    writer.start()
    for n in range(int(sys.argv[3])):
        writer.submit(LedgerRecord(requested_model="gpt-4o", ts=datetime.now(UTC), request_id=f"k{n}"))
    print("submitted", flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


def test_records_survive_sigkill_of_the_process_that_took_them(store: SQLiteLedger, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, store.url, str(journal), "300"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "submitted"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert store.count() == 0

    recovering = LedgerWriter(store, journal_dir=journal)
    recovering.start()
    recovering.close()
    assert store.count() == 300
    assert recovering.stats().recovered == 300
    assert journal_files(journal) == []


def test_a_live_writers_journal_is_not_taken_over(store: SQLiteLedger, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    flaky = FlakyStore(store)
    flaky.down.set()
    live = LedgerWriter(flaky, journal_dir=journal, retry_max_seconds=0.01)
    live.start()
    for n in range(10):
        live.submit(make_record(n))
    other = LedgerWriter(store, journal_dir=journal)
    other.start()
    other.close()
    assert other.stats().recovered == 0  # the live writer still holds its segment
    flaky.down.clear()
    live.close()
    assert store.count() == 10


def test_submitting_after_close_is_an_error(store: SQLiteLedger, tmp_path: Path) -> None:
    writer = LedgerWriter(store, journal_dir=tmp_path / "journal")
    writer.start()
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(make_record(1))
