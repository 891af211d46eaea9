"""Vector indexes for the semantic cache, partitioned by namespace and context.

A *context* is the hash of everything that must match exactly for an answer to be reused (model,
system prompt, tools, earlier turns, parameters, cache version). Searches never leave their
``(namespace, context)`` partition, so a different system prompt can never produce a hit.

``LocalIndex`` keeps partitions in process: exact numpy search while a partition is small, a
usearch HNSW graph (float16 vectors, settings below) once it grows past ``exact_limit``;
``save``/``load`` persist the whole index to one file. ``PgVectorIndex`` (in
``thrifty.semantic.pgvector``) is the shared backend on PostgreSQL with pgvector. Similarities are cosine, in [-1, 1].
"""

from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from thrifty.errors import IndexFileError

if TYPE_CHECKING:
    from usearch.index import Index

__all__ = [
    "ANN_CONNECTIVITY",
    "ANN_DTYPE",
    "ANN_EXPANSION_ADD",
    "ANN_EXPANSION_SEARCH",
    "DEFAULT_EXACT_LIMIT",
    "IndexFileError",
    "LocalIndex",
    "VectorIndex",
]

DEFAULT_EXACT_LIMIT = 8192

# The HNSW graph's settings, chosen with bench/semantic/bench.py on this 2-core machine (figures in
# the README), on 1M 384-d vectors distributed like all-MiniLM-L6-v2 embeddings of real questions,
# recall@1 against exact search for queries that are paraphrases of questions never stored:
# - connectivity 32, expansion_add 64 (was 16/64): the 1M graph builds in 161 s (the old settings
#   took 20 minutes on random vectors), and a better-connected graph needs a narrower search for
#   the same recall; about 1.3 KB per entry resident, less than exact search's float32 rows.
# - expansion_search 192 (was 64): recall@1 0.975, p99 1.41 ms. 64 gives 0.91 (p99 0.77 ms), 128
#   gives 0.96 (1.11 ms), 256 gives 0.99 (1.81 ms, too close to the 2 ms budget on a busy machine).
#   Queries near a stored entry (a paraphrase of a cached question) are found at 1.000 from 128 up.
# - f16 vectors: i8 builds and searches ~1.5x faster but its quantisation caps recall@1 near 0.90
#   on real embeddings, whose nearest neighbours are close together; f32 doubles memory for nothing.
# The usearch blob records its own dtype and connectivity, so files saved with older settings load.
ANN_DTYPE = "f16"
ANN_CONNECTIVITY = 32
ANN_EXPANSION_ADD = 64
ANN_EXPANSION_SEARCH = 192
_MAGIC = b"THRIFTY-VECTORS-1\n"
_HEADER = struct.Struct("<Q")


@runtime_checkable
class VectorIndex(Protocol):
    """Unit vectors under string ids, searched by cosine within one (namespace, context)."""

    def add(self, namespace: str, context: str, entry_id: str, vector: npt.ArrayLike) -> None:
        """Store (or replace) ``entry_id``'s vector."""
        ...

    def search(self, namespace: str, context: str, vector: npt.ArrayLike, k: int = 4) -> list[tuple[str, float]]:
        """Up to ``k`` (entry_id, cosine similarity), most similar first."""
        ...

    def remove(self, namespace: str, context: str, entry_id: str) -> bool:
        """Forget one entry (expired or evicted); False if it was not there."""
        ...

    def remove_namespace(self, namespace: str) -> int:
        """Forget every entry of a namespace; returns how many."""
        ...

    def clear(self) -> None: ...

    def __len__(self) -> int: ...


def _as_vector(vector: npt.ArrayLike, dim: int) -> npt.NDArray[np.float32]:
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    if array.shape[0] != dim:
        raise ValueError(f"expected a vector of {dim} numbers, got {array.shape[0]}")
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("the vector is zero or not finite")
    out: npt.NDArray[np.float32] = array / np.float32(norm)
    return out


class _Exact:
    """A growing float32 matrix; brute-force cosine (dot products of unit vectors)."""

    kind = "exact"

    def __init__(self, dim: int, vectors: npt.NDArray[np.float32] | None = None, ids: list[str] | None = None) -> None:
        self.dim = dim
        self.ids: list[str] = list(ids or [])
        self.rows: dict[str, int] = {entry: row for row, entry in enumerate(self.ids)}
        capacity = max(16, len(self.ids))
        self.vectors = np.zeros((capacity, dim), dtype=np.float32)
        if vectors is not None and len(self.ids):
            self.vectors[: len(self.ids)] = vectors

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, entry_id: str, vector: npt.NDArray[np.float32]) -> None:
        row = self.rows.get(entry_id)
        if row is None:
            row = len(self.ids)
            if row == self.vectors.shape[0]:
                grown = np.zeros((row * 2, self.dim), dtype=np.float32)
                grown[:row] = self.vectors[:row]
                self.vectors = grown
            self.ids.append(entry_id)
            self.rows[entry_id] = row
        self.vectors[row] = vector

    def remove(self, entry_id: str) -> bool:
        row = self.rows.pop(entry_id, None)
        if row is None:
            return False
        last = len(self.ids) - 1
        if row != last:
            moved = self.ids[last]
            self.ids[row] = moved
            self.vectors[row] = self.vectors[last]
            self.rows[moved] = row
        self.ids.pop()
        return True

    def search(self, vector: npt.NDArray[np.float32], k: int) -> list[tuple[str, float]]:
        n = len(self.ids)
        if n == 0 or k <= 0:
            return []
        scores = self.vectors[:n] @ vector
        if k < n:
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
        else:
            top = np.argsort(-scores, kind="stable")
        return [(self.ids[i], float(scores[i])) for i in top]

    def matrix(self) -> npt.NDArray[np.float32]:
        return self.vectors[: len(self.ids)]


class _Ann:
    """A usearch HNSW graph of float16 vectors; string ids mapped to integer keys."""

    kind = "ann"

    def __init__(
        self,
        dim: int,
        index: Index | None = None,
        keys: dict[str, int] | None = None,
        *,
        expansion_search: int = ANN_EXPANSION_SEARCH,
    ) -> None:
        from usearch.index import Index

        self.dim = dim
        self.index = index if index is not None else _new_usearch(dim)
        # Not a property of the stored graph: a restored graph searches with this index's setting.
        _set_expansion_search(self.index, expansion_search)
        self.keys: dict[str, int] = dict(keys or {})
        self.ids: dict[int, str] = {key: entry for entry, key in self.keys.items()}
        self.next_key = max(self.ids, default=-1) + 1
        assert isinstance(self.index, Index)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, entry_id: str, vector: npt.NDArray[np.float32]) -> None:
        self.add_many([entry_id], vector[None, :])

    def add_many(self, entry_ids: list[str], vectors: npt.NDArray[np.float32]) -> None:
        for entry_id in entry_ids:
            if entry_id in self.keys:
                self.remove(entry_id)
        keys = np.arange(self.next_key, self.next_key + len(entry_ids), dtype=np.uint64)
        self.next_key += len(entry_ids)
        self.index.add(keys, vectors)
        for entry_id, key in zip(entry_ids, keys.tolist(), strict=True):
            self.keys[entry_id] = key
            self.ids[key] = entry_id

    def remove(self, entry_id: str) -> bool:
        key = self.keys.pop(entry_id, None)
        if key is None:
            return False
        del self.ids[key]
        self.index.remove(key)
        return True

    def search(self, vector: npt.NDArray[np.float32], k: int) -> list[tuple[str, float]]:
        if not self.keys or k <= 0:
            return []
        found = self.index.search(vector, k)
        keys = np.asarray(found.keys).reshape(-1).tolist()
        distances = np.asarray(found.distances).reshape(-1).tolist()
        return [(self.ids[key], 1.0 - float(d)) for key, d in zip(keys, distances, strict=True) if key in self.ids]


def _set_expansion_search(index: Index, expansion_search: int) -> None:
    index.expansion_search = expansion_search  # type: ignore[misc]  # usearch's setter has no annotations


def _new_usearch(dim: int) -> Index:
    from usearch.index import Index

    return Index(
        ndim=dim,
        metric="cos",
        dtype=ANN_DTYPE,
        connectivity=ANN_CONNECTIVITY,
        expansion_add=ANN_EXPANSION_ADD,
        expansion_search=ANN_EXPANSION_SEARCH,
    )


class LocalIndex:
    """The in-process index: one partition per (namespace, context), exact then ANN.

    Thread-safe (one lock). ``exact_limit`` is the size at which a partition moves from exact
    search to the HNSW graph; ``bench/semantic/bench.py`` measures both sides of it.
    ``expansion_search`` trades the graphs' search latency for recall (see ``ANN_EXPANSION_SEARCH``).
    """

    def __init__(
        self, dim: int, *, exact_limit: int = DEFAULT_EXACT_LIMIT, expansion_search: int = ANN_EXPANSION_SEARCH
    ) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        if expansion_search <= 0:
            raise ValueError("expansion_search must be positive")
        self.dim = dim
        self.exact_limit = exact_limit
        self.expansion_search = expansion_search
        self._parts: dict[tuple[str, str], _Exact | _Ann] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(part) for part in self._parts.values())

    def partitions(self) -> dict[tuple[str, str], tuple[str, int]]:
        """Each partition's kind (``exact`` or ``ann``) and size."""
        with self._lock:
            return {key: (part.kind, len(part)) for key, part in self._parts.items()}

    def set_expansion_search(self, expansion_search: int) -> None:
        """Change the graphs' search breadth, now and for partitions promoted later."""
        if expansion_search <= 0:
            raise ValueError("expansion_search must be positive")
        with self._lock:
            self.expansion_search = expansion_search
            for part in self._parts.values():
                if isinstance(part, _Ann):
                    _set_expansion_search(part.index, expansion_search)

    def vector_bytes(self) -> int:
        """Bytes held by the vectors and graphs (usearch's own count; not the Python id maps)."""
        with self._lock:
            return sum(
                int(part.index.memory_usage) if isinstance(part, _Ann) else part.vectors.nbytes
                for part in self._parts.values()
            )

    def add(self, namespace: str, context: str, entry_id: str, vector: npt.ArrayLike) -> None:
        unit = _as_vector(vector, self.dim)
        with self._lock:
            part = self._parts.get((namespace, context))
            if part is None:
                part = self._parts[(namespace, context)] = _Exact(self.dim)
            part.add(entry_id, unit)
            if isinstance(part, _Exact) and len(part) > self.exact_limit:
                self._parts[(namespace, context)] = self._promote(part)

    def add_many(self, namespace: str, context: str, entry_ids: list[str], vectors: npt.ArrayLike) -> None:
        """Bulk load (for warm-up and benchmarks): builds the graph in one call when large."""
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape != (len(entry_ids), self.dim):
            raise ValueError(f"expected a {len(entry_ids)}x{self.dim} matrix")
        matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), np.float32(1e-12))
        with self._lock:
            part = self._parts.get((namespace, context))
            if part is None and len(entry_ids) > self.exact_limit:
                part = self._parts[(namespace, context)] = _Ann(self.dim, expansion_search=self.expansion_search)
            elif part is None:
                part = self._parts[(namespace, context)] = _Exact(self.dim)
            if isinstance(part, _Ann):
                part.add_many(list(entry_ids), matrix)
                return
            for entry_id, row in zip(entry_ids, matrix, strict=True):
                part.add(entry_id, row)
            if len(part) > self.exact_limit:
                self._parts[(namespace, context)] = self._promote(part)

    def _promote(self, part: _Exact) -> _Ann:
        ann = _Ann(self.dim, expansion_search=self.expansion_search)
        ann.add_many(list(part.ids), part.matrix())
        return ann

    def search(self, namespace: str, context: str, vector: npt.ArrayLike, k: int = 4) -> list[tuple[str, float]]:
        unit = _as_vector(vector, self.dim)
        with self._lock:
            part = self._parts.get((namespace, context))
            return part.search(unit, k) if part is not None else []

    def remove(self, namespace: str, context: str, entry_id: str) -> bool:
        with self._lock:
            part = self._parts.get((namespace, context))
            if part is None or not part.remove(entry_id):
                return False
            if not len(part):
                del self._parts[(namespace, context)]
            return True

    def remove_namespace(self, namespace: str) -> int:
        with self._lock:
            doomed = [key for key in self._parts if key[0] == namespace]
            removed = sum(len(self._parts[key]) for key in doomed)
            for key in doomed:
                del self._parts[key]
            return removed

    def clear(self) -> None:
        with self._lock:
            self._parts.clear()

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the whole index to ``path`` atomically (a temporary file, then a rename)."""
        target = Path(path)
        blobs: list[bytes] = []
        parts: list[dict[str, Any]] = []
        with self._lock:
            for (namespace, context), part in self._parts.items():
                meta: dict[str, Any] = {"namespace": namespace, "context": context, "kind": part.kind}
                if isinstance(part, _Exact):
                    meta["ids"] = list(part.ids)
                    blob = part.matrix().astype("<f4").tobytes()
                else:
                    meta["keys"] = part.keys
                    # For the record only: the usearch blob carries its own dtype and connectivity,
                    # so graphs built with older settings (f16, connectivity 16) still load.
                    meta["usearch"] = {
                        "dtype": str(part.index.dtype).rsplit(".", 1)[-1].lower(),
                        "connectivity": int(part.index.connectivity),
                    }
                    blob = bytes(part.index.save() or b"")
                meta["length"] = len(blob)
                parts.append(meta)
                blobs.append(blob)
        header = json.dumps({"dim": self.dim, "exact_limit": self.exact_limit, "partitions": parts}).encode()
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with temporary.open("wb") as out:
            out.write(_MAGIC)
            out.write(_HEADER.pack(len(header)))
            out.write(header)
            for blob in blobs:
                out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)

    @classmethod
    def load(cls, path: str | Path) -> LocalIndex:
        source = Path(path)
        try:
            data = source.read_bytes()
        except OSError as error:
            raise IndexFileError(f"{source}: cannot be read: {error.strerror}") from None
        if not data.startswith(_MAGIC):
            raise IndexFileError(f"{source}: not a thrifty vector index file")
        offset = len(_MAGIC)
        try:
            (length,) = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            header = json.loads(data[offset : offset + length])
            offset += length
            index = cls(int(header["dim"]), exact_limit=int(header["exact_limit"]))
            for meta in header["partitions"]:
                blob = data[offset : offset + int(meta["length"])]
                offset += int(meta["length"])
                if len(blob) != int(meta["length"]):
                    raise IndexFileError(f"{source}: truncated")
                key = (str(meta["namespace"]), str(meta["context"]))
                if meta["kind"] == "exact":
                    vectors = np.frombuffer(blob, dtype="<f4").reshape(-1, index.dim).astype(np.float32)
                    index._parts[key] = _Exact(index.dim, vectors, [str(i) for i in meta["ids"]])
                else:
                    from usearch.index import Index

                    restored = Index.restore(bytearray(blob))
                    if restored is None:
                        raise IndexFileError(f"{source}: a partition's graph cannot be read")
                    keys = {str(k): int(v) for k, v in meta["keys"].items()}
                    index._parts[key] = _Ann(index.dim, restored, keys, expansion_search=index.expansion_search)
        except (KeyError, TypeError, ValueError, struct.error) as error:
            if isinstance(error, IndexFileError):
                raise
            raise IndexFileError(f"{source}: damaged index file ({error})") from None
        return index
