"""Feedback on an answer: the application says a call's answer was wrong (or right).

What ``POST /v1/thrifty/feedback`` and ``Thrifty.feedback`` take, checked; which of a request's
ledger rows the verdict is about; whether the caller may speak for it (its tenant only); and what
the labels say about a semantic-cache threshold. Pure: the stores and the faces are elsewhere
(``thrifty.pipeline.feedback``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from thrifty.core.ledger import LedgerRecord
from thrifty.errors import InvalidRequest

__all__ = [
    "MAX_NOTE",
    "FeedbackRequest",
    "Label",
    "Suggestion",
    "Verdict",
    "answered_row",
    "parse_feedback",
    "row_tenant",
    "suggest_threshold",
    "wilson_interval",
]

Verdict = Literal["wrong", "right"]
MAX_NOTE = 1000
_VERDICTS: tuple[Verdict, ...] = ("wrong", "right")


@dataclass(frozen=True, slots=True)
class FeedbackRequest:
    request_id: str
    verdict: Verdict
    note: str | None = None


def parse_feedback(body: Mapping[str, Any]) -> FeedbackRequest:
    """The body checked, or an ``InvalidRequest`` naming the field."""
    known = {"request_id", "verdict", "note"}
    extra = sorted(set(body) - known)
    if extra:
        raise InvalidRequest(extra[0], "unknown field (a feedback body has request_id, verdict, note)")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        raise InvalidRequest("request_id", "required: the x-thrifty-request-id of the call the verdict is about")
    if len(request_id) > 200:
        raise InvalidRequest("request_id", "longer than any request id (200 characters at most)")
    verdict = body.get("verdict")
    if verdict not in _VERDICTS:
        raise InvalidRequest("verdict", f"must be 'wrong' or 'right', not {verdict!r}")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise InvalidRequest("note", f"a string of at most {MAX_NOTE} characters")
    chosen: Verdict = "wrong" if verdict == "wrong" else "right"
    return FeedbackRequest(request_id.strip(), chosen, note)


def row_tenant(row: LedgerRecord) -> str | None:
    """The tenant a row belongs to, as ``Binding.tenant`` names a key's: its team, else its key."""
    if row.team:
        return f"team:{row.team}"
    return f"key:{row.key_id}" if row.key_id else None


def answered_row(rows: Sequence[LedgerRecord]) -> LedgerRecord | None:
    """Of a request's rows (its answer, and any classifier, embedding or escalated attempt made for
    it), the one whose answer the client got: a cache hit if it was one, else the last of the
    client's own (not ``internal``) rows."""
    own = [row for row in rows if row.cache_status != "internal"]
    if not own:
        return None
    hits = [row for row in own if row.cache_status in ("hit", "semantic")]
    return hits[-1] if hits else sorted(own, key=lambda row: (row.ts, row.id))[-1]


@dataclass(frozen=True, slots=True)
class Label:
    """One semantic hit someone judged: how similar the questions were, and the verdict."""

    namespace: str
    similarity: float
    wrong: bool


@dataclass(frozen=True, slots=True)
class Suggestion:
    namespace: str
    labels: int
    wrong: int
    precision: float
    low: float
    high: float
    threshold: float | None
    """The lowest similarity at which the judged hits above it meet the target; None: every
    threshold the labels cover still does not (raise it above the highest wrong hit, or gather
    more labels)."""


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 1) with no observations."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - spread), min(1.0, centre + spread)


def suggest_threshold(labels: Sequence[Label], target: float = 0.95) -> list[Suggestion]:
    """Per namespace: the precision of its judged hits (with its Wilson interval) and the lowest
    threshold at which the hits at or above it reach ``target`` precision by the interval's lower
    bound when there are enough labels, by the point estimate otherwise."""
    by_namespace: dict[str, list[Label]] = {}
    for label in labels:
        by_namespace.setdefault(label.namespace, []).append(label)
    out = []
    for namespace, judged in sorted(by_namespace.items()):
        wrong = sum(label.wrong for label in judged)
        low, high = wilson_interval(len(judged) - wrong, len(judged))
        out.append(
            Suggestion(
                namespace=namespace,
                labels=len(judged),
                wrong=wrong,
                precision=(len(judged) - wrong) / len(judged),
                low=low,
                high=high,
                threshold=_lowest_meeting(judged, target),
            )
        )
    return out


def _lowest_meeting(judged: Sequence[Label], target: float) -> float | None:
    """The lowest similarity ``t`` at which the hits with similarity >= ``t`` meet ``target``."""
    ordered = sorted(judged, key=lambda label: label.similarity, reverse=True)
    best: float | None = None
    right = 0
    for count, label in enumerate(ordered, start=1):
        right += not label.wrong
        if count < len(ordered) and ordered[count].similarity == label.similarity:
            continue  # a tie: judged once all of its labels are in
        # Enough labels: the interval's lower bound must clear the target; a few: the estimate.
        measure = wilson_interval(right, count)[0] if count >= 30 else right / count
        if measure >= target:
            best = label.similarity
    return None if best is None else round(best, 4)
