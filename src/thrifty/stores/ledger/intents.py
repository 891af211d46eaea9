"""Write-ahead intents: a call is journalled before it goes upstream, so a crash during it leaves
an ``interrupted`` row (with what is known of its cost) instead of silence.

An intent is the call's ledger row as it would stand if the process died now: status
``interrupted``, the request's input tokens priced as a lower bound, under the id its final row
will carry. Each writer appends its intents to one file of its own, ``intents-<owner>-<n>.jsonl``
(``owner`` as in its segments' names), which it keeps locked for as long as it lives. The final
row goes to the segments as any row does, and ``complete`` forgets the intent; the file is
rewritten with only the calls still in flight once it has grown past ``compact_bytes`` and is
mostly intents already superseded.

Replay. A live writer's intents file is locked: nobody reads it, so an intent is never taken for
an interrupted call while its call can still finish. Once the writer is gone (its lock with it),
its intents file is replayed only after every segment of that writer is in the database; inserts
are idempotent on the id, so an intent whose final row is already there writes nothing, and one
whose call never finished becomes its ``interrupted`` row.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from thrifty.stores.ledger.journal import create_locked, encode_rows, orphaned_files, segments_of, write_all

__all__ = ["IntentLog", "orphaned_intents"]

log = logging.getLogger("thrifty.ledger")

_PREFIX = "intents-"
_SUFFIX = ".jsonl"
_FORGET_AFTER_S = 6 * 3600.0
"""An intent still pending after this long is a call whose end was never recorded (a bug, not a
call in flight): it is dropped from memory at the next rewrite, with a warning."""


class IntentLog:
    """One writer's intents file. Not thread-safe: the writer calls it under its own lock."""

    def __init__(self, directory: Path, owner: str, *, compact_bytes: int = 1 << 20) -> None:
        self._dir = directory
        self._owner = owner
        self._compact_bytes = compact_bytes
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._next = 0
        self._pending: dict[Any, tuple[float, bytes]] = {}
        self._pending_bytes = 0

    def intend(self, row: Sequence[Any]) -> None:
        """Journal ``row`` (one ``write(2)``) as the call's row should the process die before
        ``complete`` is called with a row of the same id."""
        data = encode_rows([row])
        if self._fd is None or (self._size >= self._compact_bytes and self._size >= 2 * self._pending_bytes):
            self._rewrite()
        assert self._fd is not None
        write_all(self._fd, data)
        self._size += len(data)
        old = self._pending.get(row[0])
        if old is not None:
            self._pending_bytes -= len(old[1])
        self._pending[row[0]] = (time.monotonic(), data)
        self._pending_bytes += len(data)

    def complete(self, rows: Sequence[Sequence[Any]]) -> None:
        """These final rows are journalled: their intents are superseded."""
        pending = self._pending
        if pending:
            for row in rows:
                done = pending.pop(row[0], None)
                if done is not None:
                    self._pending_bytes -= len(done[1])

    @property
    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Delete the file when no call is in flight; otherwise leave it, unlocked, so that the
        calls that never finished are recorded as interrupted."""
        fd, path = self._fd, self._path
        self._fd = self._path = None
        if fd is None or path is None:
            return
        if not self._pending:
            path.unlink(missing_ok=True)
        os.close(fd)

    def _rewrite(self) -> None:
        """A new file with only the intents still pending, then the old one deleted (while still
        locked, so no replayer ever reads it)."""
        now = time.monotonic()
        stale = [key for key, (at, _) in self._pending.items() if now - at > _FORGET_AFTER_S]
        if stale:
            hours = _FORGET_AFTER_S / 3600
            log.warning("ledger: %d intents had no final row after %.0f h; forgotten", len(stale), hours)
            for key in stale:
                self._pending_bytes -= len(self._pending.pop(key)[1])
        path = self._dir / f"{_PREFIX}{self._owner}-{self._next:06d}{_SUFFIX}"
        self._next += 1
        fd = create_locked(path)
        carried = b"".join(data for _, data in self._pending.values())
        try:
            if carried:
                write_all(fd, carried)
        except BaseException:
            path.unlink(missing_ok=True)
            os.close(fd)
            raise
        old_fd, old_path = self._fd, self._path
        self._fd, self._path, self._size = fd, path, len(carried)
        if old_fd is not None and old_path is not None:
            try:
                old_path.unlink(missing_ok=True)
            finally:
                os.close(old_fd)


def orphaned_intents(directory: Path) -> Iterator[tuple[Path, int]]:
    """Intents files of writers that are gone and whose segments are all replayed, each with a
    descriptor holding its lock (the caller closes it). One whose writer still has segments on
    disk waits for a later pass: its final rows must be in the database first."""
    if not directory.is_dir():
        return
    for path, fd in orphaned_files(directory, f"{_PREFIX}*{_SUFFIX}"):
        owner = path.name.removeprefix(_PREFIX).removesuffix(_SUFFIX).rpartition("-")[0]
        if segments_of(directory, owner):  # checked holding the lock: its writer makes no more
            os.close(fd)
            continue
        yield path, fd
