"""Scoring a router on labelled outcomes, as RouteLLM does.

A router gives each prompt a score; the top-scored share ``p`` of prompts goes to the strong model,
the rest to the weak one. Sweeping ``p`` from 0 to 1 gives the quality–cost curve. Prompts with
equal scores are routed as a random router would route them (the expected value: the curve is a
straight line across a run of ties), so a router that scores everything alike *is* the random
router, and a rule that sends 30% of prompts up is one point joined to both ends.

* PGR(p), the performance gap recovered: (quality(p) - weak) / (strong - weak).
* APGR: the area under PGR over p in [0, 1]; a random router's is 0.5.
* CPT(x): the least share of strong calls at which PGR reaches x.
* Saving at 95%: at the cheapest point whose quality is at least 95% of the strong model's, the
  cost saved against sending everything to the strong model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["CurvePoint", "Outcome", "RouterReport", "evaluate_router", "split_rows"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One labelled prompt: each model's quality (1/0 or a score) and what its answer cost."""

    prompt: str
    weak: float
    strong: float
    weak_cost: Decimal
    strong_cost: Decimal


@dataclass(frozen=True, slots=True)
class CurvePoint:
    strong_share: float
    quality: float
    cost: Decimal
    pgr: float | None


@dataclass(frozen=True, slots=True)
class RouterReport:
    name: str
    rows: int
    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    target_quality: float
    """The quality the saving is measured at: 95% of the strong model's."""
    share_at_target: float
    quality_at_target: float
    cost_at_target: Decimal
    saving_at_target: float
    """1 - cost at the target point / cost of always strong."""
    weak_quality: float
    strong_quality: float
    weak_cost: Decimal
    strong_cost: Decimal
    curve: tuple[CurvePoint, ...]


class _Curve:
    """Cumulative quality and cost at the boundaries between runs of equal scores; linear between."""

    def __init__(self, scores: Sequence[float], rows: Sequence[Outcome]) -> None:
        n = len(rows)
        order = sorted(range(n), key=lambda i: -scores[i])
        self.n = n
        self.weak_quality = sum(r.weak for r in rows)
        self.weak_cost = sum((r.weak_cost for r in rows), Decimal(0))
        self.bounds: list[int] = [0]
        self.gain: list[float] = [0.0]
        self.extra: list[Decimal] = [Decimal(0)]
        gain, extra = 0.0, Decimal(0)
        for position, index in enumerate(order):
            row = rows[index]
            gain += row.strong - row.weak
            extra += row.strong_cost - row.weak_cost
            last = position == n - 1
            if last or scores[order[position + 1]] != scores[index]:
                self.bounds.append(position + 1)
                self.gain.append(gain)
                self.extra.append(extra)

    def _segment(self, k: float) -> tuple[int, float]:
        for j in range(1, len(self.bounds)):
            if k <= self.bounds[j]:
                lo, hi = self.bounds[j - 1], self.bounds[j]
                return j, (k - lo) / (hi - lo)
        return len(self.bounds) - 1, 1.0

    def at(self, share: float) -> tuple[float, Decimal]:
        """(mean quality, total cost) when ``share`` of the calls go to the strong model."""
        j, t = self._segment(share * self.n)
        gain = self.gain[j - 1] + (self.gain[j] - self.gain[j - 1]) * t
        extra = self.extra[j - 1] + (self.extra[j] - self.extra[j - 1]) * Decimal(repr(t))
        return (self.weak_quality + gain) / self.n, self.weak_cost + extra

    def first_share(self, quality_goal: float) -> float:
        """The least share whose (interpolated) quality reaches ``quality_goal``."""
        goal = quality_goal * self.n - self.weak_quality
        if goal <= 0:
            return 0.0
        for j in range(1, len(self.bounds)):
            lo_gain, hi_gain = self.gain[j - 1], self.gain[j]
            if hi_gain >= goal - 1e-12:
                lo, hi = self.bounds[j - 1], self.bounds[j]
                t = 1.0 if hi_gain == lo_gain else (goal - lo_gain) / (hi_gain - lo_gain)
                return (lo + t * (hi - lo)) / self.n
        return 1.0


def evaluate_router(
    name: str, scores: Sequence[float], rows: Sequence[Outcome], *, points: int = 21, target: float = 0.95
) -> RouterReport:
    """Higher score: more in need of the strong model."""
    if len(scores) != len(rows):
        raise ValueError("one score a row is needed")
    if not rows:
        raise ValueError("no rows to evaluate")
    curve = _Curve(scores, rows)
    n = len(rows)
    weak_q = curve.weak_quality / n
    strong_q = sum(r.strong for r in rows) / n
    strong_cost = sum((r.strong_cost for r in rows), Decimal(0))
    gap = strong_q - weak_q

    def pgr(quality: float) -> float | None:
        return None if gap <= 0 else (quality - weak_q) / gap

    # APGR: the exact area under the piecewise-linear PGR curve (trapezoids between boundaries).
    apgr: float | None = None
    if gap > 0:
        area = 0.0
        for j in range(1, len(curve.bounds)):
            width = (curve.bounds[j] - curve.bounds[j - 1]) / n
            area += width * (curve.gain[j - 1] + curve.gain[j]) / 2
        apgr = area / n / gap

    def cpt(fraction: float) -> float | None:
        return None if gap <= 0 else curve.first_share(weak_q + fraction * gap)

    goal = target * strong_q
    share = curve.first_share(goal)
    quality, cost = curve.at(share)
    sampled = []
    for i in range(points):
        s = i / (points - 1)
        q, c = curve.at(s)
        sampled.append(CurvePoint(s, q, c, pgr(q)))
    return RouterReport(
        name=name,
        rows=n,
        apgr=apgr,
        cpt50=cpt(0.5),
        cpt80=cpt(0.8),
        target_quality=goal,
        share_at_target=share,
        quality_at_target=quality,
        cost_at_target=cost,
        saving_at_target=float(1 - cost / strong_cost) if strong_cost else 0.0,
        weak_quality=weak_q,
        strong_quality=strong_q,
        weak_cost=curve.weak_cost,
        strong_cost=strong_cost,
        curve=tuple(sampled),
    )


def split_rows(n: int, train_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random split of row indices: (train, test). The same n, fraction and seed always
    give the same split, so ``router train`` and ``eval router`` agree on the held-out rows."""
    if not 0 < train_fraction < 1:
        raise ValueError("the train fraction must be between 0 and 1")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    cut = round(n * train_fraction)
    return sorted(order[:cut]), sorted(order[cut:])
