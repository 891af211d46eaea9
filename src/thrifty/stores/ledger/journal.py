"""The ledger journal: every record is appended to a local file before it is queued for the
database, so a record of a completed call survives a crash of the process, a database outage, and
a restart.

Each writer appends to its own segment files (``ledger-<pid>-<random>-<n>.jsonl``) and holds an
exclusive ``flock`` on each for as long as it lives. A segment is created under a temporary name,
locked, and only then renamed to its segment name: no process ever sees an unlocked segment of a
live writer (one that did would take it for a dead writer's, replay it empty and delete it while
the writer appends to the deleted file). A segment is deleted once every row in it is
in the database. At start-up a writer replays the segments nobody holds a lock on: their writer
died. Inserts are idempotent on the record id, so replaying rows that did reach the database
before the crash writes nothing twice.

Durability: a row is written to the kernel with one ``write(2)`` before ``submit`` returns; it
survives the process being killed (even with SIGKILL). It is not fsynced, so a power cut can lose
the last moments of rows, as with any database at ``synchronous=NORMAL``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Segment", "SegmentFactory", "encode_rows", "orphaned_segments", "read_segment"]

log = logging.getLogger("thrifty.ledger")

_PREFIX = "ledger-"
_SUFFIX = ".jsonl"
_CREATING = ".creating-"
_STALE_CREATING_S = 60.0
"""A temporary file older than this whose creator holds no lock was left by a crash mid-creation
(it never held a row: rows are appended only after the rename)."""


@dataclass(eq=False)
class Segment:
    """One journal file owned (and locked) by this process."""

    path: Path
    fd: int
    rows: int = 0
    """Rows appended."""
    written: int = 0
    """Rows of this segment known to be in the database."""
    closed: bool = False
    """No more rows will be appended (the writer rotated to a new segment)."""
    spilled: bool = False
    """Some rows were not kept in memory: the file must be replayed to write them."""

    def append_encoded(self, data: bytes, rows: int) -> None:
        """Append ``rows`` rows already encoded by ``encode_rows``, in one ``write(2)``."""
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.rows += rows

    def close_for_append(self) -> None:
        self.closed = True

    def release(self) -> None:
        """Delete the file (all of its rows are in the database) and drop the lock."""
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)

    def detach(self) -> None:
        """Drop the lock but keep the file, for the next writer to replay."""
        os.close(self.fd)

    @property
    def done(self) -> bool:
        return self.closed and not self.spilled and self.written >= self.rows


class SegmentFactory:
    """Creates this process's segments in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._stem = f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
        self._next = 0

    def new(self) -> Segment:
        name = f"{self._stem}{self._next:06d}{_SUFFIX}"
        self._next += 1
        creating = self.directory / f"{_CREATING}{name}"
        path = self.directory / name
        fd = os.open(creating, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else looks at a .creating- file
            os.rename(creating, path)  # appears under the segment glob already locked
        except BaseException:
            os.close(fd)
            creating.unlink(missing_ok=True)
            raise
        return Segment(path, fd)


def encode_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """One JSON array a line."""
    return b"".join(orjson.dumps(row, default=str) + b"\n" for row in rows)


def orphaned_segments(directory: Path) -> Iterator[tuple[Path, int]]:
    """Segments whose writer is gone, each yielded with a file descriptor that holds its lock
    (so two recovering processes never replay the same file at once). The caller closes it."""
    if not directory.is_dir():
        return
    _remove_stale_creations(directory)
    for path in sorted(directory.glob(f"{_PREFIX}*{_SUFFIX}")):
        fd = _lock_if_free(path)
        if fd is None:
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # replayed and deleted by another process meanwhile
            os.close(fd)
            continue
        yield path, fd


def _lock_if_free(path: Path) -> int | None:
    """A descriptor holding ``path``'s lock, or None when it is gone or a live process holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _remove_stale_creations(directory: Path) -> None:
    now = time.time()
    for path in directory.glob(f"{_CREATING}*"):
        try:
            if now - path.stat().st_mtime < _STALE_CREATING_S:
                continue
        except FileNotFoundError:
            continue
        fd = _lock_if_free(path)
        if fd is not None:
            try:
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)


def read_segment(path: Path) -> Iterator[list[Any]]:
    """The rows of a segment. A torn last line (the process died mid-write) is skipped: its call's
    ``submit`` never returned, so it was never acknowledged as recorded."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                log.warning("ledger journal %s: skipping a torn last line %d", path.name, number)
                break
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.error("ledger journal %s: line %d is not JSON; kept in %s.bad", path.name, number, path.name)
                _keep_bad_line(path, line)
                continue
            if isinstance(row, list):
                yield row


def _keep_bad_line(path: Path, line: bytes) -> None:
    with path.with_suffix(path.suffix + ".bad").open("ab") as bad:
        bad.write(line)
