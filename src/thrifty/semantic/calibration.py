"""Calibration: labelled question pairs in, precision and recall over thresholds out.

Pair files are CSV with a header naming ``sentence1,sentence2,label`` or
``question1,question2,is_duplicate`` (other columns are ignored). Labels are 0 or 1.

Splits are by a hash of the pair's text, so a pair lands in the same part whatever the file's order
and whichever file it comes from: ``train`` (60%: fits the verifier), ``calibration`` (20%: picks
thresholds) and ``held-out`` (20%: the figures reported, never tuned on).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from thrifty.errors import PairFileError

if TYPE_CHECKING:
    from thrifty.semantic.embedder import Embedder
    from thrifty.semantic.verifier import Verifier

_PROGRESS_BATCH = 256

__all__ = [
    "DEFAULT_THRESHOLDS",
    "SPLITS",
    "Curve",
    "CurvePoint",
    "LabelCeiling",
    "Pair",
    "PairFileError",
    "PairScores",
    "Split",
    "curve",
    "label_ceiling",
    "lowest_threshold",
    "parse_pairs",
    "read_pairs",
    "sample",
    "score_pairs",
    "split",
    "split_of",
]

Split = Literal["train", "calibration", "held-out", "all"]
SPLITS: tuple[Split, ...] = ("train", "calibration", "held-out", "all")
_BOUNDS = {"train": (0.0, 0.6), "calibration": (0.6, 0.8), "held-out": (0.8, 1.0), "all": (0.0, 1.0)}
_LAYOUTS = (("sentence1", "sentence2", "label"), ("question1", "question2", "is_duplicate"))
_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.005 * i, 3) for i in range(101))


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    label: int
    line: int = 0


def read_pairs(path: str | Path) -> list[Pair]:
    from thrifty.config.files import read_text_file

    return parse_pairs(read_text_file(path, PairFileError, encoding="utf-8-sig"), str(Path(path)))


def parse_pairs(text: str, source: str = "<pairs>") -> list[Pair]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise PairFileError(f"{source}: empty file; expected a header sentence1,sentence2,label") from None
    except csv.Error as error:
        raise PairFileError(f"{source}: line 1: {error}") from None
    names = [h.strip().lower() for h in header]
    for layout in _LAYOUTS:
        if all(column in names for column in layout):
            ia, ib, il = (names.index(column) for column in layout)
            break
    else:
        raise PairFileError(
            f"{source}: line 1: the header must name sentence1,sentence2,label or question1,question2,is_duplicate; "
            f"got {','.join(header)[:120]}"
        )
    pairs: list[Pair] = []
    width = max(ia, ib, il) + 1
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise PairFileError(f"{source}: line {start}: {error}") from None
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < width:
            raise PairFileError(f"{source}: line {start}: expected at least {width} columns, got {len(row)}")
        a, b, label = row[ia].strip(), row[ib].strip(), row[il].strip().lower()
        if not a or not b:
            raise PairFileError(f"{source}: line {start}: an empty question")
        if label in _TRUE:
            value = 1
        elif label in _FALSE:
            value = 0
        else:
            raise PairFileError(f"{source}: line {start}: label {row[il]!r} is not 0 or 1")
        pairs.append(Pair(a, b, value, start))
    if not pairs:
        raise PairFileError(f"{source}: no pairs after the header")
    return pairs


def split_of(pair: Pair) -> float:
    """Where a pair falls in [0, 1): a hash of its two texts, in either order."""
    first, second = sorted((pair.a, pair.b))
    digest = hashlib.sha256(f"{first}\x00{second}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(pairs: Iterable[Pair], part: Split) -> list[Pair]:
    low, high = _BOUNDS[part]
    return [p for p in pairs if low <= split_of(p) < high]


def sample(pairs: Sequence[Pair], limit: int | None) -> list[Pair]:
    """At most ``limit`` pairs, chosen by hash (so the same ones every time), in file order."""
    if limit is None or len(pairs) <= limit:
        return list(pairs)
    keyed = sorted(range(len(pairs)), key=lambda i: hashlib.sha256(f"{pairs[i].a}\x01{pairs[i].b}".encode()).digest())
    keep = sorted(keyed[:limit])
    return [pairs[i] for i in keep]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    threshold: float
    predicted: int
    true_positives: int
    precision: float | None
    recall: float
    f1: float

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "threshold": self.threshold,
            "hits": self.predicted,
            "true_hits": self.true_positives,
            "precision": None if self.precision is None else round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass(frozen=True, slots=True)
class Curve:
    positives: int
    negatives: int
    points: tuple[CurvePoint, ...]

    def at(self, threshold: float) -> CurvePoint:
        return min(self.points, key=lambda p: abs(p.threshold - threshold))


def curve(
    scores: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer] | Sequence[int],
    accepted: npt.NDArray[np.bool_] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> Curve:
    """Precision, recall and F1 of "hit when score >= threshold (and ``accepted``)" at each threshold.

    Precision is None where nothing is a hit."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    ok = np.ones_like(y) if accepted is None else np.asarray(accepted, dtype=bool)
    positives = int(y.sum())
    points = []
    for t in thresholds:
        hit = (s >= t - 1e-9) & ok
        predicted = int(hit.sum())
        tp = int((hit & y).sum())
        precision = tp / predicted if predicted else None
        recall = tp / positives if positives else 0.0
        f1 = 2 * tp / (predicted + positives) if predicted + positives else 0.0
        points.append(CurvePoint(float(t), predicted, tp, precision, recall, f1))
    return Curve(positives, int((~y).sum()), tuple(points))


def lowest_threshold(c: Curve, target_precision: float, *, min_hits: int = 25) -> float | None:
    """The lowest threshold from which precision stays >= the target at every higher threshold that
    makes at least ``min_hits`` hits (so one lucky hit cannot set it); None if none does."""
    best: float | None = None
    for point in sorted(c.points, key=lambda p: p.threshold, reverse=True):
        if point.predicted < min_hits:
            continue
        if point.precision is None or point.precision < target_precision:
            break
        best = point.threshold
    return best


@dataclass(frozen=True, slots=True)
class LabelCeiling:
    """How far the labels themselves let precision go: the share labelled duplicates among pairs
    that are the same question (once case, spaces and punctuation are dropped) and among the pairs
    the model finds closest. No threshold and no second check can beat that share for long: if it
    is below the target precision, the target is out of reach on these labels."""

    same_question: int
    same_question_duplicates: float | None
    closest_floor: float
    closest: int
    closest_duplicates: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        def share(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "same_question_pairs": self.same_question,
            "same_question_labelled_duplicate": share(self.same_question_duplicates),
            "closest_cosine_at_least": self.closest_floor,
            "closest_pairs": self.closest,
            "closest_labelled_duplicate": share(self.closest_duplicates),
        }


def label_ceiling(
    pairs: Sequence[Pair], cosine: npt.NDArray[np.floating], *, closest_floor: float = 0.99
) -> LabelCeiling:
    same = [p.label for p in pairs if _plain(p.a) == _plain(p.b)]
    close = np.asarray(cosine) >= closest_floor
    labels = np.array([p.label for p in pairs], dtype=np.int64)
    return LabelCeiling(
        same_question=len(same),
        same_question_duplicates=sum(same) / len(same) if same else None,
        closest_floor=closest_floor,
        closest=int(close.sum()),
        closest_duplicates=float(labels[close].mean()) if close.any() else None,
    )


def _plain(text: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())


@dataclass(frozen=True, slots=True)
class PairScores:
    """Everything the matcher would look at for each pair, computed once, thresholded many times."""

    labels: npt.NDArray[np.int64]
    cosine: npt.NDArray[np.float64]
    vetoes: tuple[str | None, ...]  # the guard's reason, per pair
    probability: npt.NDArray[np.float64] | None  # the verifier's, per pair (None: no verifier)
    seconds: dict[str, float]

    @property
    def guard_ok(self) -> npt.NDArray[np.bool_]:
        return np.array([v is None for v in self.vetoes], dtype=bool)

    def accepted(self, *, guard: bool, verifier: bool, min_probability: float) -> npt.NDArray[np.bool_]:
        ok = self.guard_ok if guard else np.ones(len(self.labels), dtype=bool)
        if verifier:
            if self.probability is None:
                raise ValueError("scored without a verifier")
            ok = ok & (self.probability >= min_probability)
        return ok


def score_pairs(
    pairs: Sequence[Pair],
    embedder: Embedder | None = None,
    verifier: Verifier | None = None,
    progress: Callable[[int], None] | None = None,
) -> PairScores:
    """Cosine (from ``embedder``, else from the verifier's local model), the guard's verdict and the
    verifier's probability for every pair. Each distinct text is run through a model once;
    ``progress(n)`` is told as each batch of ``n`` texts is done (the models are most of the time)."""
    import time

    from thrifty.semantic.guard import compare, features
    from thrifty.semantic.verifier import pair_features

    if embedder is None and verifier is None:
        raise ValueError("score_pairs needs an embedder or a verifier")
    texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    row = {t: i for i, t in enumerate(texts)}
    left = np.array([row[p.a] for p in pairs], dtype=np.int64)
    right = np.array([row[p.b] for p in pairs], dtype=np.int64)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    chunks = [texts[i : i + _PROGRESS_BATCH] for i in range(0, len(texts), _PROGRESS_BATCH)]
    prepared: list[Any] | None = None
    if verifier is not None:
        prepared = []
        for chunk in chunks:
            prepared += verifier.prepare(chunk)
            if progress is not None and embedder is verifier.encoder:
                progress(len(chunk))
    if embedder is not None and (verifier is None or embedder is not verifier.encoder):
        parts = []
        for chunk in chunks:
            parts.append(embedder.embed(chunk))
            if progress is not None:
                progress(len(chunk))
        vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
    else:
        assert prepared is not None
        vectors = np.stack([p.sentence for p in prepared])
    seconds["models"] = time.perf_counter() - started
    cosine = np.einsum("ij,ij->i", vectors[left], vectors[right]).astype(np.float64)
    started = time.perf_counter()
    parsed = [p.guard for p in prepared] if prepared is not None else [features(t) for t in texts]
    vetoes = tuple(compare(parsed[a], parsed[b]) for a, b in zip(left.tolist(), right.tolist(), strict=True))
    seconds["guard"] = time.perf_counter() - started
    probability = None
    if verifier is not None and prepared is not None:
        started = time.perf_counter()
        idf = verifier.model.idf
        x = np.stack([pair_features(prepared[a], prepared[b], idf) for a, b in zip(left, right, strict=True)])
        probability = verifier.model.probability(x)
        seconds["verifier"] = time.perf_counter() - started
    labels = np.array([p.label for p in pairs], dtype=np.int64)
    return PairScores(labels, cosine, vetoes, probability, seconds)
