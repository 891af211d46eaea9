"""Write-ahead intents: a call journalled before it goes upstream is in the ledger exactly once --
as its final row when it finished, as ``interrupted`` when its process died or stopped first --
and never as ``interrupted`` while its process can still finish it."""

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

import pytest

from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing.rates import Cost
from thrifty.stores.ledger import LedgerWriter, open_ledger
from thrifty.stores.ledger.intents import IntentLog, orphaned_intents
from thrifty.stores.ledger.journal import read_segment
from thrifty.stores.ledger.journal_writer import JournalWriter
from thrifty.stores.ledger.sqlite import SQLiteLedger

AT = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteLedger:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert isinstance(ledger, SQLiteLedger)
    return ledger


def intent(n: int) -> LedgerRecord:
    return LedgerRecord(
        id=f"call-{n:04d}",
        requested_model="gpt-4o-mini",
        ts=AT,
        request_id=f"r{n}",
        status="interrupted",
        cost=Cost(uncached_input=Decimal("0.00001")),
        details={"cost_lower_bound": True},
    )


def final(n: int) -> LedgerRecord:
    return LedgerRecord(
        id=f"call-{n:04d}", requested_model="gpt-4o-mini", ts=AT, request_id=f"r{n}", cost=Cost(output=Decimal("0.001"))
    )


def statuses(url: str) -> dict[str, str]:
    store = open_ledger(url)
    try:
        return {record.id: record.status for record in store.records(limit=10_000)}
    finally:
        store.close()


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_a_finished_call_is_one_row_and_an_unfinished_one_is_interrupted_at_close(
    tmp_path: Path, ledger_url: str
) -> None:
    url = ledger_url
    writer = JournalWriter(tmp_path / "journal", url)
    writer.start()
    for n in range(20):
        writer.intend(intent(n))
    for n in range(15):
        writer.submit(final(n))
    assert writer.flush(timeout=30)
    assert writer.flush(timeout=30)  # two sidecar passes over the segments: the intents stay out
    assert statuses(url) == {f"call-{n:04d}": "ok" for n in range(15)}
    writer.close()  # five calls still in flight: their end will never be recorded
    rows = statuses(url)
    assert rows == {f"call-{n:04d}": "ok" if n < 15 else "interrupted" for n in range(20)}
    assert not list((tmp_path / "journal").glob("*.jsonl"))


def test_a_writer_with_nothing_in_flight_leaves_no_intents_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = JournalWriter(tmp_path / "journal", url)
    writer.start()
    writer.intend(intent(1))
    writer.submit(final(1))
    writer.close()
    assert statuses(url) == {"call-0001": "ok"}
    assert not list((tmp_path / "journal").glob("intents-*"))


GATEWAY_THAT_DIES = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from decimal import Decimal
    from pathlib import Path
    from thrifty.core.ledger import LedgerRecord
    from thrifty.stores.ledger.journal_writer import JournalWriter

    at = datetime(2026, 12, 1, tzinfo=UTC)
    writer = JournalWriter(Path(sys.argv[1]), sys.argv[2], rotate_seconds=0.01)
    writer.start()
    calls = int(sys.argv[3])
    for n in range(calls):
        writer.intend(LedgerRecord(id=f"call-{n:04d}", requested_model="gpt-4o", ts=at, status="interrupted"))
        if n % 2 == 0:  # half of the calls finished before the kill
            writer.submit(LedgerRecord(id=f"call-{n:04d}", requested_model="gpt-4o", ts=at))
    writer.flush()
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def test_calls_in_flight_when_the_process_is_killed_are_interrupted_and_the_rest_ok(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    journal = tmp_path / "journal"
    child = subprocess.Popen(
        [sys.executable, "-c", GATEWAY_THAT_DIES, str(journal), url, "400"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    assert set(statuses(url).values()) == {"ok"}  # alive: the sidecar wrote the final rows, no intent
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    wait_for(lambda: len(statuses(url)) == 400)  # its sidecar replays the intents once it is gone
    rows = statuses(url)
    assert rows == {f"call-{n:04d}": "ok" if n % 2 == 0 else "interrupted" for n in range(400)}
    wait_for(lambda: not list(journal.glob("*.jsonl")))


def test_an_orphaned_intents_file_waits_for_its_writers_segments(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    log = IntentLog(journal, "4242-abcd")
    log.intend(intent(1).to_values())
    assert list(orphaned_intents(journal)) == []  # locked: its writer is alive
    log.close()  # a call in flight: the file stays, unlocked
    segment = journal / "ledger-4242-abcd-000003.jsonl"
    segment.write_bytes(b"")
    assert list(orphaned_intents(journal)) == []  # its final rows may be in that segment: not yet
    segment.unlink()
    ((path, fd),) = list(orphaned_intents(journal))
    os.close(fd)
    assert [row[0] for row in read_segment(path)] == ["call-0001"]


def test_the_intents_file_is_rewritten_with_only_the_calls_in_flight(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    log = IntentLog(journal, "77-beef", compact_bytes=4096)
    for n in range(500):
        log.intend(intent(n).to_values())
        if n % 10:
            log.complete([final(n).to_values()])
    (path,) = journal.glob("intents-*.jsonl")  # each rewrite deleted the file before it
    in_flight = {f"call-{n:04d}" for n in range(0, 500, 10)}
    kept = [row[0] for row in read_segment(path)]
    assert in_flight <= set(kept) and len(kept) == len(set(kept))
    assert len(kept) <= 2 * len(in_flight) + 4096 // 200  # bounded by what is in flight, not 500 calls long
    assert log.pending == len(in_flight)
    log.close()
    assert path.exists()  # calls in flight at close: kept for the replay, as interrupted


def test_the_in_process_writer_recovers_a_closed_writers_calls_in_flight(store: SQLiteLedger, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    writer = LedgerWriter(store, journal_dir=journal)
    writer.start()
    writer.intend(intent(1))
    writer.intend(intent(2))
    writer.submit(final(1))
    writer.close()
    successor = LedgerWriter(store, journal_dir=journal)
    successor.start()
    successor.close()
    assert {r.id: r.status for r in store.records()} == {"call-0001": "ok", "call-0002": "interrupted"}
    (interrupted,) = [r for r in store.records() if r.status == "interrupted"]
    assert interrupted.details == {"cost_lower_bound": True}
    assert interrupted.cost is not None and interrupted.cost.total == Decimal("0.00001")
