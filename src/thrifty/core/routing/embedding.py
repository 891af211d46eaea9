"""Embeddings for the learned router: a small protocol, and a built-in featuriser that needs no model.

Any object with ``name``, ``dim`` and ``embed(texts)`` returning L2-normalised float32 rows will
do -- the semantic cache's local embedding model among them, so that a request is embedded once
when both are on. The built-in ``HashedNgrams`` hashes word uni- and bigrams and character
trigrams into a fixed number of dimensions (signed feature hashing, sub-linear term counts): no
vocabulary, no download, deterministic across processes and machines.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Embedder", "HashedNgrams", "Matrix", "Vector"]

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]

_WORD = re.compile(r"\w+")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows, one a text."""

    @property
    def name(self) -> str:
        """Identifies the embedding (model and size): a router only runs on the one it was trained on."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Matrix: ...


class HashedNgrams:
    """Feature hashing of word 1-2-grams and character 3-grams. Cheap: tens of microseconds for a
    short prompt. ``dim`` should be a power of two."""

    def __init__(self, dim: int = 4096, *, char_ngrams: bool = True) -> None:
        if dim < 16 or dim & (dim - 1):
            raise ValueError("dim must be a power of two, at least 16")
        self._dim = dim
        self._mask = dim - 1
        self._char_ngrams = char_ngrams

    @property
    def name(self) -> str:
        return f"hashed-ngrams-v1:{self._dim}{'' if self._char_ngrams else ':words'}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Matrix:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            self._fill(out[row], text)
        return out

    def embed_one(self, text: str) -> Vector:
        out = np.zeros(self._dim, dtype=np.float32)
        self._fill(out, text)
        return out

    def _fill(self, out: Vector, text: str) -> None:
        lowered = text.lower()
        words = _WORD.findall(lowered)
        grams: Counter[str] = Counter(words)
        grams.update(f"{a} {b}" for a, b in itertools.pairwise(words))
        if self._char_ngrams:
            squeezed = " ".join(words)
            grams.update(f"#{squeezed[i : i + 3]}" for i in range(len(squeezed) - 2))
        if not grams:
            return
        mask = self._mask
        indices = np.empty(len(grams), dtype=np.int64)
        values = np.empty(len(grams), dtype=np.float32)
        for i, (gram, count) in enumerate(grams.items()):
            digest = zlib.crc32(gram.encode())
            indices[i] = digest & mask
            weight = 1.0 + math.log(count)
            values[i] = -weight if digest & 0x80000000 else weight
        np.add.at(out, indices, values)
        norm = float(np.linalg.norm(out))
        if norm > 0:
            out /= norm
