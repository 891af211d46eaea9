"""The verifier: a second, more exact check of each candidate hit, run only on the few candidates
above the similarity threshold.

A logistic regression over about thirty cheap features of the pair:

- token alignment on the local model's contextual token vectors (BERTScore-style): how well each
  token of one question is matched by some token of the other, plain and weighted by the token's
  rarity (IDF), and the worst-matched tokens on each side -- an embedding averages a changed word
  away, alignment does not;
- the sentence cosine of the same model;
- lexical overlap (word and content-word Jaccard, words only on one side, length ratio, the same
  question word);
- the near-miss guard's verdict and category.

Its weights, the feature scaling and the IDF table are data (``verifier.npz``), made by
``bench/semantic/train_verifier.py`` from the training split of the Quora development pairs and
shipped inside the package: nothing is downloaded. The token vectors come from the local ONNX model
whatever embedder retrieves the candidates, so the verifier also works behind a provider's
embeddings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from thrifty.semantic.embedder import OnnxEmbedder, TokenStates
from thrifty.semantic.guard import GuardFeatures, compare, features

__all__ = [
    "FEATURE_NAMES",
    "Prepared",
    "Verifier",
    "VerifierModel",
    "pair_features",
]

FEATURE_NAMES = (
    "cosine", "cosine_sq",
    "align_p", "align_r", "align_f", "align_p_idf", "align_r_idf", "align_f_idf",
    "worst_max", "worst_min", "unmatched_min", "unmatched_max",
    "jaccard", "content_jaccard", "only_min", "only_max", "any_only_both", "any_only", "length_ratio",
    "length_diff",
    "same_first_word",
    "guard", "guard_negation", "guard_numbers", "guard_dates", "guard_units", "guard_names", "guard_swapped",
    "guard_opposite",
)  # fmt: skip
_GUARD_PREFIXES = ("negation", "numbers", "dates", "units", "names differ", "names swapped", "opposite")
_WORDS = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    str.split(
        "a an the of to in on for and or is are was were be been do does did i my me you your we our how what "
        "why which who whom when where can could should would will it its this that these those with as at by "
        "from about there their they he she his her any some"
    )
)
_UNMATCHED = 0.7


@dataclass(frozen=True, slots=True)
class Prepared:
    """One question, ready to compare: its token vectors, words and guard features."""

    text: str
    ids: npt.NDArray[np.int64]
    tokens: npt.NDArray[np.float32]  # unit rows, special tokens removed
    sentence: npt.NDArray[np.float32]  # the unit mean-pooled sentence vector
    words: tuple[str, ...]
    guard: GuardFeatures


def prepare_from_states(text: str, states: TokenStates) -> Prepared:
    hidden = states.hidden
    sentence = hidden.mean(axis=0)
    sentence = sentence / max(float(np.linalg.norm(sentence)), 1e-12)
    inner = hidden[1:-1] if hidden.shape[0] > 2 else hidden
    ids = states.ids[1:-1] if states.ids.shape[0] > 2 else states.ids
    tokens = inner / np.maximum(np.linalg.norm(inner, axis=1, keepdims=True), np.float32(1e-12))
    return Prepared(
        text=text,
        ids=ids,
        tokens=tokens.astype(np.float32),
        sentence=sentence.astype(np.float32),
        words=tuple(_WORDS.findall(text.lower())),
        guard=features(text),
    )


def _align(sims: npt.NDArray[np.float32], weights: npt.NDArray[np.float32]) -> tuple[float, float, float, float]:
    """For each row token, its best match among the columns: mean, IDF-weighted mean, worst, and the
    IDF share of tokens matched below ``_UNMATCHED``."""
    best = sims.max(axis=1)
    total = float(weights.sum()) or 1.0
    return (
        float(best.mean()),
        float((best * weights).sum() / total),
        float(best.min()),
        float(weights[best < _UNMATCHED].sum() / total),
    )


def _f_score(precision: float, recall: float) -> float:
    """The harmonic mean of two alignment scores. Token cosines can be negative, and for two
    unrelated questions so can a mean best match: read those as 0, or 2pr/(p+r) blows up (a
    divisor near zero gave -2e5 on two Quora pairs)."""
    p, r = max(precision, 0.0), max(recall, 0.0)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def pair_features(a: Prepared, b: Prepared, idf: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The verifier's features of a pair, in ``FEATURE_NAMES`` order (symmetric in a and b)."""
    cosine = float(a.sentence @ b.sentence)
    sims = a.tokens @ b.tokens.T
    wa = idf[np.minimum(a.ids, idf.shape[0] - 1)]
    wb = idf[np.minimum(b.ids, idf.shape[0] - 1)]
    r_plain, r_idf, worst_a, unmatched_a = _align(sims, wa)
    p_plain, p_idf, worst_b, unmatched_b = _align(sims.T, wb)
    f_plain = _f_score(p_plain, r_plain)
    f_idf = _f_score(p_idf, r_idf)
    set_a, set_b = set(a.words), set(b.words)
    content_a, content_b = set_a - _STOP, set_b - _STOP
    only_a, only_b = len(content_a - content_b), len(content_b - content_a)
    len_a, len_b = max(len(a.words), 1), max(len(b.words), 1)
    verdict = compare(a.guard, b.guard)
    categories = [float(verdict is not None and verdict.startswith(prefix)) for prefix in _GUARD_PREFIXES]
    # The alignment features are symmetric: report each side's as (smaller, larger) pairs.
    return np.array(
        [
            cosine,
            cosine * cosine,
            min(p_plain, r_plain),
            max(p_plain, r_plain),
            f_plain,
            min(p_idf, r_idf),
            max(p_idf, r_idf),
            f_idf,
            max(worst_a, worst_b),
            min(worst_a, worst_b),
            min(unmatched_a, unmatched_b),
            max(unmatched_a, unmatched_b),
            len(set_a & set_b) / max(len(set_a | set_b), 1),
            len(content_a & content_b) / max(len(content_a | content_b), 1),
            float(np.log1p(min(only_a, only_b))),
            float(np.log1p(max(only_a, only_b))),
            float(min(only_a, only_b) > 0),
            float(max(only_a, only_b) > 0),
            min(len_a, len_b) / max(len_a, len_b),
            float(np.log1p(abs(len_a - len_b))),
            float(a.words[:1] == b.words[:1]),
            float(verdict is not None),
            *categories,
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True, slots=True)
class VerifierModel:
    """The learned part: feature scaling, logistic-regression weights, IDF table, operating points."""

    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]  # one per feature, then the intercept
    idf: npt.NDArray[np.float32]
    min_probability: float  # the verifier's cut
    threshold: float  # the calibrated cosine threshold that goes with it
    info: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path | None = None) -> VerifierModel:
        if path is None:
            with resources.as_file(resources.files("thrifty.semantic").joinpath("verifier.npz")) as file:
                return cls._read(file)
        return cls._read(Path(path))

    @classmethod
    def _read(cls, path: Path) -> VerifierModel:
        import json

        with np.load(path, allow_pickle=False) as data:
            names = tuple(str(n) for n in data["feature_names"])
            if names != FEATURE_NAMES:
                raise ValueError(f"{path}: made for other features; run bench/semantic/train_verifier.py")
            return cls(
                mean=data["mean"].astype(np.float64),
                scale=data["scale"].astype(np.float64),
                weights=data["weights"].astype(np.float64),
                idf=data["idf"].astype(np.float32),
                min_probability=float(data["min_probability"]),
                threshold=float(data["threshold"]),
                info=json.loads(str(data["info"])),
            )

    def save(self, path: str | Path) -> None:
        import json

        np.savez_compressed(
            path,
            feature_names=np.array(FEATURE_NAMES),
            mean=self.mean,
            scale=self.scale,
            weights=self.weights,
            idf=self.idf.astype(np.float16),
            min_probability=np.float64(self.min_probability),
            threshold=np.float64(self.threshold),
            info=np.array(json.dumps(self.info, sort_keys=True)),
        )

    def probability(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        z = ((np.atleast_2d(x) - self.mean) / self.scale) @ self.weights[:-1] + self.weights[-1]
        out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        return out


class Verifier:
    """Scores candidate pairs with the shipped model; ``prepare`` each text once, compare many."""

    def __init__(self, encoder: OnnxEmbedder | None = None, model: VerifierModel | None = None) -> None:
        self._encoder = encoder if encoder is not None else OnnxEmbedder()
        self._model = model

    @property
    def encoder(self) -> OnnxEmbedder:
        return self._encoder

    @property
    def model(self) -> VerifierModel:
        if self._model is None:
            self._model = VerifierModel.load()
        return self._model

    @property
    def min_probability(self) -> float:
        return self.model.min_probability

    def prepare(self, texts: Sequence[str]) -> list[Prepared]:
        states = self._encoder.encode_tokens(texts)
        return [prepare_from_states(text, s) for text, s in zip(texts, states, strict=True)]

    def probability(self, query: Prepared, candidate: Prepared) -> float:
        return float(self.model.probability(pair_features(query, candidate, self.model.idf))[0])

    def probabilities(self, pairs: Sequence[tuple[Prepared, Prepared]]) -> npt.NDArray[np.float64]:
        if not pairs:
            return np.empty(0, dtype=np.float64)
        x = np.stack([pair_features(a, b, self.model.idf) for a, b in pairs])
        return self.model.probability(x)
