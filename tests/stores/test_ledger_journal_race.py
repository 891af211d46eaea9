"""The journal race, reproduced with the product's own classes: one process creating segments as
rotation does and appending to each, while two others replay orphaned segments in a loop (as
the ledger sidecar and a starting gateway do). Every appended row is replayed exactly once: no
replayer ever takes a live writer's segment for a dead one's."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from thrifty.core.ledger import LedgerRecord
from thrifty.stores.ledger import open_ledger
from thrifty.stores.ledger.inserter import Inserter
from thrifty.stores.ledger.journal import SegmentFactory, encode_rows, orphaned_segments, read_segment

SEGMENTS = 6_000
ROWS_PER_SEGMENT = 3


def _write(directory: str, done: Any, errors: Any) -> None:
    factory = SegmentFactory(Path(directory))
    live = []
    try:
        for n in range(SEGMENTS):
            segment = factory.new()  # rotation: a new segment, appended to at once
            for r in range(ROWS_PER_SEGMENT):
                segment.append_encoded(encode_rows([[f"row-{n}-{r}"]]), 1)
            live.append(segment)
            if len(live) > 8:  # older segments are finished: the writer lets them go, unreplayed
                live.pop(0).detach()
    except BaseException as error:  # the old race: BlockingIOError out of the lock
        errors.put(repr(error))
    finally:
        for segment in live:
            segment.detach()
        done.set()


def _replay(directory: str, out: str, done: Any) -> None:
    with open(out, "w") as seen:
        while True:
            finished = done.is_set()
            for path, fd in orphaned_segments(Path(directory)):
                try:
                    for row in read_segment(path):
                        seen.write(f"{row[0]}\n")
                    path.unlink(missing_ok=True)
                finally:
                    os.close(fd)
            if finished:
                return


def test_segments_created_under_load_are_never_replayed_while_live(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    directory = tmp_path / "journal"
    directory.mkdir()
    done = context.Event()
    errors = context.Queue()
    outs = [tmp_path / f"replayed-{n}.txt" for n in range(2)]
    replayers = [context.Process(target=_replay, args=(str(directory), str(out), done)) for out in outs]
    for process in replayers:
        process.start()
    writer = context.Process(target=_write, args=(str(directory), done, errors))
    writer.start()
    writer.join(120)
    for process in replayers:
        process.join(120)
    assert writer.exitcode == 0 and all(p.exitcode == 0 for p in replayers)
    assert errors.empty(), errors.get()
    rows = [line for out in outs for line in out.read_text().splitlines()]
    expected = {f"row-{n}-{r}" for n in range(SEGMENTS) for r in range(ROWS_PER_SEGMENT)}
    assert len(rows) == len(set(rows)), "a row was replayed twice"
    missing = expected - set(rows)
    assert not missing, f"{len(missing)} of {len(expected)} rows lost"
    assert not list(directory.iterdir())  # every segment replayed and removed, no temporary left


LEDGER_SEGMENTS = 3_000


def _write_records(directory: str, done: Any, errors: Any) -> None:
    """As the gateway's writer does: real ledger rows, a new segment every few rows."""
    factory = SegmentFactory(Path(directory))
    at = datetime.now(UTC)
    live = []
    try:
        for n in range(LEDGER_SEGMENTS):
            segment = factory.new()
            for r in range(ROWS_PER_SEGMENT):
                record = LedgerRecord(requested_model="gpt-4o-mini", ts=at, id=f"{n:06d}{r:02d}")
                segment.append_encoded(encode_rows([record.to_values()]), 1)
            live.append(segment)
            if len(live) > 8:
                live.pop(0).detach()
    except BaseException as error:
        errors.put(repr(error))
    finally:
        for segment in live:
            segment.detach()
        done.set()


def _replay_into_ledger(directory: str, url: str, done: Any) -> None:
    """As the ledger sidecar does: ``Inserter.replay_orphans`` in a loop, into the real ledger."""
    store = open_ledger(url)
    inserter = Inserter(store, Path(directory))
    try:
        while True:
            finished = done.is_set()
            inserter.replay_orphans()
            if finished:
                return
    finally:
        store.close()


def test_every_row_reaches_a_real_sqlite_ledger_exactly_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    directory = tmp_path / "journal"
    directory.mkdir()
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    open_ledger(url).close()  # migrated once, before the replayers race for it
    done = context.Event()
    errors = context.Queue()
    replayers = [context.Process(target=_replay_into_ledger, args=(str(directory), url, done)) for _ in range(2)]
    for process in replayers:
        process.start()
    writer = context.Process(target=_write_records, args=(str(directory), done, errors))
    writer.start()
    writer.join(120)
    for process in replayers:
        process.join(120)
    assert writer.exitcode == 0 and all(p.exitcode == 0 for p in replayers)
    assert errors.empty(), errors.get()
    store = open_ledger(url)
    try:
        ids = [record.id for record in store.records(limit=10 * LEDGER_SEGMENTS * ROWS_PER_SEGMENT)]
    finally:
        store.close()
    expected = {f"{n:06d}{r:02d}" for n in range(LEDGER_SEGMENTS) for r in range(ROWS_PER_SEGMENT)}
    assert len(ids) == len(set(ids)) == store_count(url)
    missing = expected - set(ids)
    assert not missing, f"{len(missing)} of {len(expected)} rows lost"
    assert set(ids) == expected
    assert not [p for p in directory.iterdir() if p.name.startswith(("ledger-", ".creating-"))]


def store_count(url: str) -> int:
    store = open_ledger(url)
    try:
        return store.count()
    finally:
        store.close()
