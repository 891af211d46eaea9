"""The learned router: a logistic model over a request's embedding (and a few shape features) that
gives the probability that a stronger model is needed. Trained offline from labelled outcomes;
routing with it is one embedding and one dot product -- no LLM call.

The label of a training row is "the strong model did better than the weak one" (correct where the
weak was wrong, or a higher score): sending a request up a tier pays only when that is so.
The threshold stored with the router is chosen on out-of-fold predictions of the training rows:
the lowest share of strong calls that reaches ``target_quality`` of the strong model's quality.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from thrifty.core.routing.embedding import Embedder, Vector
from thrifty.errors import RouterFileError

__all__ = ["ROUTER_FORMAT", "LearnedRouter", "RouterFileError", "shape_features", "train_router"]

ROUTER_FORMAT = "thrifty-router"
_VERSION = 1
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_SHAPE_SCALE = 0.3
_CLIP = 5.0
"""Standardised shape features are clipped: a prompt unlike any in training must not dominate."""
"""Weight of the standardised shape features next to the unit-length embedding."""

Floats = npt.NDArray[np.float64]


def shape_features(text: str) -> list[float]:
    """Size and make-up of a prompt: characters, words, numbers, sentences, symbols."""
    words = _WORD.findall(text)
    numbers = _NUMBER.findall(text)
    return [
        math.log1p(len(text)),
        math.log1p(len(words)),
        math.log1p(len(numbers)),
        float(text.count(".") + text.count("?") + text.count("!")),
        float(len(set(numbers))),
        float(sum(1 for n in numbers if len(n) >= 3)),
        float(text.count("%")),
        float(text.count("$")),
        float(text.count("\n")),
    ]


_N_SHAPE = len(shape_features(""))


@dataclass(frozen=True, eq=False)
class LearnedRouter:
    embedder: str
    """The embedder's name: routing needs the same one."""
    dim: int
    weights: Floats
    bias: float
    shape_mean: Floats
    shape_std: Floats
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)

    def score(self, embedding: Vector, text: str) -> float:
        """The probability that a stronger model is needed for this request."""
        dim = self.dim
        shape = np.clip((np.asarray(shape_features(text)) - self.shape_mean) / self.shape_std, -_CLIP, _CLIP)
        z = float(embedding @ self.weights[:dim]) + float(shape @ self.weights[dim:]) * _SHAPE_SCALE + self.bias
        return _sigmoid(z)

    def scores(self, embeddings: npt.NDArray[np.float32], texts: Sequence[str]) -> Floats:
        features = _features(embeddings, texts, self.shape_mean, self.shape_std)
        result: Floats = 1.0 / (1.0 + np.exp(-(features @ self.weights + self.bias)))
        return result

    def tier(self, score: float, thresholds: Sequence[float], tiers: int) -> int:
        """The tier for a score: past the k-th threshold, tier k (with one threshold and several
        tiers: the lowest tier below it, the highest at or above it)."""
        if len(thresholds) == 1 and tiers > 2:
            return tiers - 1 if score >= thresholds[0] else 0
        tier = 0
        for threshold in thresholds:
            if score >= threshold:
                tier += 1
        return min(tier, tiers - 1)

    def to_document(self) -> dict[str, Any]:
        return {
            "format": ROUTER_FORMAT,
            "version": _VERSION,
            "kind": "logistic",
            "embedder": self.embedder,
            "dim": self.dim,
            "bias": self.bias,
            "threshold": self.threshold,
            "shape_mean": [float(x) for x in self.shape_mean],
            "shape_std": [float(x) for x in self.shape_std],
            "weights": [round(float(x), 7) for x in self.weights],
            "info": self.info,
        }

    @classmethod
    def from_document(cls, document: object) -> LearnedRouter:
        if not isinstance(document, dict) or document.get("format") != ROUTER_FORMAT:
            raise RouterFileError("not a thrifty router file (made by `thrifty router train`)")
        if document.get("version") != _VERSION:
            raise RouterFileError(f"router file version {document.get('version')!r}; this thrifty reads {_VERSION}")
        try:
            dim = int(document["dim"])
            weights = np.asarray(document["weights"], dtype=np.float64)
            mean = np.asarray(document["shape_mean"], dtype=np.float64)
            std = np.asarray(document["shape_std"], dtype=np.float64)
            router = cls(
                embedder=str(document["embedder"]),
                dim=dim,
                weights=weights,
                bias=float(document["bias"]),
                shape_mean=mean,
                shape_std=std,
                threshold=float(document["threshold"]),
                info=dict(document.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RouterFileError(f"router file: missing or malformed field ({error})") from None
        if weights.shape != (dim + _N_SHAPE,) or mean.shape != (_N_SHAPE,) or std.shape != (_N_SHAPE,):
            raise RouterFileError("router file: the weights do not match its sizes")
        if not 0 <= router.threshold <= 1:
            raise RouterFileError("router file: threshold must be between 0 and 1")
        return router


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _features(embeddings: npt.NDArray[np.float32], texts: Sequence[str], mean: Floats, std: Floats) -> Floats:
    shape = np.clip((np.asarray([shape_features(t) for t in texts], dtype=np.float64) - mean) / std, -_CLIP, _CLIP)
    return np.hstack([embeddings.astype(np.float64), shape * _SHAPE_SCALE])


def _fit(x: Floats, y: Floats, l2: float, iterations: int) -> tuple[Floats, float]:
    """L2-regularised logistic regression by Adam on the full batch (deterministic). Hashed
    n-gram features are mostly zeros: then the products run over the non-zero entries only."""
    n, d = x.shape
    rows, cols = np.nonzero(x)
    sparse = len(rows) < 0.2 * n * d
    values = x[rows, cols]

    def forward(w: Floats) -> Floats:
        if sparse:
            return np.asarray(np.bincount(rows, weights=values * w[cols], minlength=n), dtype=np.float64)
        product: Floats = x @ w
        return product

    def backward(g: Floats) -> Floats:
        if sparse:
            return np.asarray(np.bincount(cols, weights=values * g[rows], minlength=d), dtype=np.float64)
        product: Floats = x.T @ g
        return product

    w = np.zeros(d)
    b = 0.0
    m = np.zeros(d)
    v = np.zeros(d)
    mb = vb = 0.0
    rate, beta1, beta2, eps = 0.05, 0.9, 0.999, 1e-8
    for t in range(1, iterations + 1):
        p = 1.0 / (1.0 + np.exp(-(forward(w) + b)))
        g = p - y
        gw = backward(g) / n + l2 * w
        gb = float(g.mean())
        m = beta1 * m + (1 - beta1) * gw
        v = beta2 * v + (1 - beta2) * gw * gw
        mb = beta1 * mb + (1 - beta1) * gb
        vb = beta2 * vb + (1 - beta2) * gb * gb
        correction1, correction2 = 1 - beta1**t, 1 - beta2**t
        w -= rate * (m / correction1) / (np.sqrt(v / correction2) + eps)
        b -= rate * (mb / correction1) / (math.sqrt(vb / correction2) + eps)
    return w, b


def _threshold(scores: Floats, weak: Floats, strong: Floats, target_quality: float) -> float:
    """The highest threshold whose routing (strong at or above it) reaches ``target_quality`` of
    the strong model's mean quality on these rows."""
    goal = target_quality * float(strong.mean())
    order = np.argsort(-scores, kind="stable")
    quality = float(weak.sum())
    n = len(scores)
    if quality / n >= goal:
        return 1.0
    for index in order:
        quality += float(strong[index] - weak[index])
        if quality / n >= goal:
            return float(scores[index])
    return 0.0


def train_router(
    embedder: Embedder,
    prompts: Sequence[str],
    weak: Sequence[float],
    strong: Sequence[float],
    *,
    l2: float = 3e-3,
    iterations: int = 300,
    folds: int = 3,
    target_quality: float = 0.95,
    seed: int = 0,
    info: dict[str, Any] | None = None,
) -> LearnedRouter:
    """Fit on every row given; pick the threshold on out-of-fold predictions (``folds`` > 1)."""
    if len(prompts) != len(weak) or len(prompts) != len(strong):
        raise ValueError("prompts, weak and strong must have the same length")
    if len(prompts) < 10:
        raise ValueError("at least 10 labelled rows are needed to train a router")
    weak_arr = np.asarray(weak, dtype=np.float64)
    strong_arr = np.asarray(strong, dtype=np.float64)
    labels = (strong_arr > weak_arr).astype(np.float64)
    embeddings = embedder.embed(list(prompts))
    raw_shape = np.asarray([shape_features(p) for p in prompts], dtype=np.float64)
    mean = raw_shape.mean(axis=0)
    std = raw_shape.std(axis=0)
    std = np.where(std < 1e-6, 1.0, std)  # a feature constant in training says nothing
    x = _features(embeddings, prompts, mean, std)
    threshold = 0.5
    if folds > 1:
        out_of_fold = np.zeros(len(prompts))
        order = np.random.default_rng(seed).permutation(len(prompts))
        for fold in range(folds):
            held = order[fold::folds]
            kept = np.setdiff1d(order, held)
            w, b = _fit(x[kept], labels[kept], l2, iterations)
            out_of_fold[held] = 1.0 / (1.0 + np.exp(-(x[held] @ w + b)))
        threshold = _threshold(out_of_fold, weak_arr, strong_arr, target_quality)
    weights, bias = _fit(x, labels, l2, iterations)
    details = dict(info or {})
    details.update(rows=len(prompts), positives=int(labels.sum()), l2=l2, iterations=iterations)
    details["target_quality"] = target_quality
    return LearnedRouter(
        embedder=embedder.name,
        dim=embedder.dim,
        weights=weights,
        bias=bias,
        shape_mean=mean,
        shape_std=std,
        threshold=threshold,
        info=details,
    )
