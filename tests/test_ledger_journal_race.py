"""The journal race, reproduced with the product's own classes: one process creating segments as
rotation does and appending to each, while two others replay orphaned segments in a loop (as
the ledger sidecar and a starting gateway do). Every appended row is replayed exactly once: no
replayer ever takes a live writer's segment for a dead one's."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

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
                    import os

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
