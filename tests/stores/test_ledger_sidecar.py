"""The gateway's ledger path: rows appended to the journal, moved into the database by a sidecar
process -- through a sidecar crash, the gateway's own crash, and a database outage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing.rates import Cost
from thrifty.stores.ledger import open_ledger
from thrifty.stores.ledger.journal_writer import JournalWriter
from thrifty.stores.ledger.sidecar import status_path


def record(n: int) -> LedgerRecord:
    return LedgerRecord(
        requested_model="gpt-4o-mini", ts=datetime.now(UTC), request_id=f"r{n}", cost=Cost(output=Decimal("0.001"))
    )


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_rows_reach_the_database_through_the_sidecar(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = JournalWriter(tmp_path / "journal", url)
    writer.start()
    for n in range(500):
        writer.submit(record(n))
    assert writer.flush(timeout=30)
    store = open_ledger(url)
    assert store.count() == 500
    (total,) = store.totals("model")
    assert total.cost_usd == Decimal("0.5")
    assert writer.health() is None
    writer.close()
    assert not list((tmp_path / "journal").glob("ledger-*.jsonl"))
    store.close()


def test_a_killed_sidecar_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = JournalWriter(tmp_path / "journal", url)
    writer.start()
    first = writer._sidecar
    assert first is not None
    for n in range(100):
        writer.submit(record(n))
    os.kill(first.pid, signal.SIGKILL)
    for n in range(100, 200):
        writer.submit(record(n))
    wait_for(lambda: writer._sidecar is not first)
    assert writer.flush(timeout=30)
    writer.close()
    store = open_ledger(url)
    assert store.count() == 200
    store.close()


def test_the_signals_a_whole_process_group_gets_leave_the_gateways_sidecar_running(tmp_path: Path) -> None:
    """Ctrl-C in a terminal and systemd's stop signal the gateway and its sidecar at once; the
    sidecar keeps going until the gateway has handed over its last rows and closes its stdin."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    journal = tmp_path / "journal"
    writer = JournalWriter(journal, url)
    writer.start()
    sidecar = writer._sidecar
    assert sidecar is not None
    wait_for(lambda: status_path(journal, sidecar.pid).exists())  # running, its handlers set
    os.kill(sidecar.pid, signal.SIGINT)
    os.kill(sidecar.pid, signal.SIGTERM)
    for n in range(100):
        writer.submit(record(n))
    assert writer.flush(timeout=30)
    assert writer._sidecar is sidecar and sidecar.poll() is None, "the sidecar stopped on a group signal"
    writer.close()
    assert sidecar.returncode == 0, "it stopped by itself once its stdin closed, not killed"
    store = open_ledger(url)
    assert store.count() == 100
    store.close()


def test_rows_wait_through_a_database_outage(tmp_path: Path) -> None:
    locked_db = tmp_path / "ledger.db"
    url = f"sqlite:///{locked_db}"
    open_ledger(url).close()
    blocker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sqlite3, sys, time
            conn = sqlite3.connect({str(locked_db)!r}, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep(float(sys.argv[1]))
            conn.execute("ROLLBACK")
        """),
            "4",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert blocker.stdout is not None and blocker.stdout.readline().strip() == "locked"
    writer = JournalWriter(tmp_path / "journal", url)
    writer.start()
    for n in range(50):
        writer.submit(record(n))
    assert writer.flush(timeout=60)  # the sidecar retried until the lock went away
    blocker.wait(timeout=30)
    writer.close()
    store = open_ledger(url)
    assert store.count() == 50
    store.close()


GATEWAY_THAT_DIES = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from pathlib import Path
    from thrifty.core.ledger import LedgerRecord
    from thrifty.stores.ledger.journal_writer import JournalWriter

    writer = JournalWriter(Path(sys.argv[1]), sys.argv[2], rotate_seconds=3600)  # nothing handed over
    writer.start()
    for n in range(int(sys.argv[3])):
        writer.submit(LedgerRecord(requested_model="gpt-4o", ts=datetime.now(UTC), request_id=f"k{n}"))
    print("submitted", flush=True)
    sys.stdin.read()
    """
)


def test_rows_of_a_gateway_killed_with_sigkill_are_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    journal = tmp_path / "journal"
    child = subprocess.Popen(
        [sys.executable, "-c", GATEWAY_THAT_DIES, str(journal), url, "300"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "submitted"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    # Its sidecar notices the parent is gone, replays the segment the dead process held, exits.
    store = open_ledger(url)
    wait_for(lambda: store.count() == 300)
    store.close()
    wait_for(lambda: not list(journal.glob("ledger-*.jsonl")))
