"""The shared vector index: PostgreSQL with the pgvector extension.

One table, ``thrifty_semantic_vectors`` by default: (namespace, context, entry_id) -> vector(dim).
Searches filter on (namespace, context) first -- a btree index -- and rank the partition by cosine
distance (``<=>``), so results are exact within a partition and never cross into another. With
``hnsw=True`` an HNSW index is also built for very large partitions; pgvector then filters after
the graph search, so set it only where one partition holds most of the table.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from thrifty.semantic.index import _as_vector
from thrifty.stores.pg_session import PgSession

if TYPE_CHECKING:
    import psycopg

__all__ = ["PgVectorIndex"]

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _literal(vector: npt.NDArray[np.float32]) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in vector.tolist()) + "]"


class PgVectorIndex:
    """``VectorIndex`` on PostgreSQL + pgvector. One connection, used under a lock; reconnects once
    when the connection was lost. Creates the extension (if allowed) and the table on first use."""

    def __init__(
        self, url: str, dim: int = 384, *, table: str = "thrifty_semantic_vectors", hnsw: bool = False
    ) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table name {table!r}: use lower-case letters, digits and _")
        self.url = url
        self.dim = dim
        self.table = table
        self.hnsw = hnsw
        self._session = PgSession(self._connect)

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True)
        # Without the right to create it, it may exist already; the table creation says if not.
        with contextlib.suppress(psycopg.Error):
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        t = self.table
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "namespace text NOT NULL, context text NOT NULL, entry_id text NOT NULL, "
            f"embedding vector({self.dim}) NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (namespace, context, entry_id))".encode()
        )
        if self.hnsw:
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw (embedding vector_cosine_ops)".encode()
            )
        return conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._session.run(sql, params)

    def close(self) -> None:
        self._session.close()

    def add(self, namespace: str, context: str, entry_id: str, vector: npt.ArrayLike) -> None:
        unit = _as_vector(vector, self.dim)
        self._run(
            f"INSERT INTO {self.table} (namespace, context, entry_id, embedding) VALUES (%s, %s, %s, %s::vector) "
            "ON CONFLICT (namespace, context, entry_id) DO UPDATE SET embedding = EXCLUDED.embedding, "
            "created_at = now()",
            (namespace, context, entry_id, _literal(unit)),
        )

    def search(self, namespace: str, context: str, vector: npt.ArrayLike, k: int = 4) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        literal = _literal(_as_vector(vector, self.dim))
        rows = self._run(
            f"SELECT entry_id, 1 - (embedding <=> %s::vector) FROM {self.table} "
            "WHERE namespace = %s AND context = %s ORDER BY embedding <=> %s::vector, entry_id LIMIT %s",
            (literal, namespace, context, literal, k),
        )
        return [(str(entry), float(similarity)) for entry, similarity in rows]

    def remove(self, namespace: str, context: str, entry_id: str) -> bool:
        rows = self._run(
            f"DELETE FROM {self.table} WHERE namespace = %s AND context = %s AND entry_id = %s",
            (namespace, context, entry_id),
        )
        return bool(rows[0][0])

    def remove_namespace(self, namespace: str) -> int:
        rows = self._run(f"DELETE FROM {self.table} WHERE namespace = %s", (namespace,))
        return int(rows[0][0])

    def clear(self) -> None:
        self._run(f"TRUNCATE {self.table}")

    def __len__(self) -> int:
        rows = self._run(f"SELECT count(*) FROM {self.table}")
        return int(rows[0][0])
