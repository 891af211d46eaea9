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
before the crash writes nothing twice. Beside its segments a writer keeps one intents file, the
calls it has sent upstream and not yet recorded (see ``intents``).

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

__all__ = [
    "Segment",
    "SegmentFactory",
    "create_locked",
    "encode_rows",
    "orphaned_files",
    "orphaned_segments",
    "read_segment",
    "segments_of",
    "write_all",
]

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
        write_all(self.fd, data)
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
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        """Names this writer's files: its segments and its intents file (see ``intents``)."""
        self._stem = f"{_PREFIX}{self.owner}-"
        self._next = 0

    def new(self) -> Segment:
        name = f"{self._stem}{self._next:06d}{_SUFFIX}"
        self._next += 1
        path = self.directory / name
        return Segment(path, create_locked(path))


def create_locked(path: Path) -> int:
    """Create ``path`` holding its lock from the moment it is visible under its name: it is made
    under a temporary name that no replayer looks at, locked, then renamed. The descriptor."""
    creating = path.with_name(f"{_CREATING}{path.name}")
    fd = os.open(creating, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else locks a fresh .creating- file
        os.rename(creating, path)  # appears under its name already locked
    except BaseException:
        os.close(fd)
        creating.unlink(missing_ok=True)
        raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    """``data`` appended with one ``write(2)`` (more only if the kernel takes part of it)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def encode_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """One JSON array a line."""
    return b"".join(orjson.dumps(row, default=str) + b"\n" for row in rows)


def orphaned_segments(directory: Path) -> Iterator[tuple[Path, int]]:
    """Segments whose writer is gone, each yielded with a file descriptor that holds its lock
    (so two recovering processes never replay the same file at once). The caller closes it."""
    if not directory.is_dir():
        return
    _remove_stale_creations(directory)
    yield from orphaned_files(directory, f"{_PREFIX}*{_SUFFIX}")


def segments_of(directory: Path, owner: str) -> list[Path]:
    """The segments of the writer ``owner`` (``SegmentFactory.owner``) still on disk."""
    return list(directory.glob(f"{_PREFIX}{owner}-*{_SUFFIX}"))


def orphaned_files(directory: Path, pattern: str) -> Iterator[tuple[Path, int]]:
    """The files matching ``pattern`` that nobody holds a lock on, each with a descriptor holding
    its lock, checked to still be the file under that name. The caller closes it."""
    for path in sorted(directory.glob(pattern)):
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
