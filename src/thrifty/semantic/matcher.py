"""Deciding a semantic hit: threshold, then the near-miss guard, then the verifier.

The caller embeds the compared text (by default the last user message), searches the index within
the request's context partition (``context_key``), looks up each candidate's stored question, and
asks ``SemanticMatcher.decide``. Candidates are tried best first; the first one that passes all
three checks is the hit. A miss says why the best candidate was refused, so the ledger can show
what the guard and the verifier saved.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from thrifty.semantic.guard import near_miss
from thrifty.semantic.verifier import Prepared, Verifier

__all__ = ["Candidate", "Decision", "SemanticMatcher", "compared_text", "context_key"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An index search result joined with the question it was stored under."""

    entry_id: str
    text: str
    similarity: float


@dataclass(frozen=True, slots=True)
class Decision:
    hit: bool
    entry_id: str | None
    similarity: float | None  # the hit's, or the best candidate's on a miss
    reason: str
    probability: float | None = None  # the verifier's, when it ran on the deciding candidate
    timings: dict[str, float] = field(default_factory=dict)  # seconds: guard, verifier, total


class SemanticMatcher:
    """``threshold`` is the cosine a candidate needs (``thresholds`` overrides it per namespace);
    ``guard`` turns the near-miss rules on; ``verifier`` (None: off) is the second check, passing
    candidates whose probability is at least ``min_probability`` (default: the shipped model's)."""

    def __init__(
        self,
        threshold: float,
        *,
        thresholds: Mapping[str, float] | None = None,
        guard: bool = True,
        verifier: Verifier | None = None,
        min_probability: float | None = None,
    ) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError("threshold must be a cosine similarity in [-1, 1]")
        self.threshold = threshold
        self.thresholds = dict(thresholds or {})
        self.guard = guard
        self.verifier = verifier
        self._min_probability = min_probability

    @property
    def min_probability(self) -> float | None:
        if self.verifier is None:
            return None
        return self._min_probability if self._min_probability is not None else self.verifier.min_probability

    def threshold_for(self, namespace: str | None) -> float:
        return self.thresholds.get(namespace, self.threshold) if namespace is not None else self.threshold

    def decide(self, query: str, candidates: Sequence[Candidate], *, namespace: str | None = None) -> Decision:
        started = time.perf_counter()
        timings = {"guard": 0.0, "verifier": 0.0}
        threshold = self.threshold_for(namespace)
        ordered = sorted(candidates, key=lambda c: c.similarity, reverse=True)
        if not ordered:
            return self._done(Decision(False, None, None, "no candidates"), timings, started)
        best = ordered[0]
        if best.similarity < threshold:
            reason = f"below threshold: {best.similarity:.4f} < {threshold:.4f}"
            return self._done(Decision(False, None, best.similarity, reason), timings, started)
        refusal: Decision | None = None
        prepared_query: Prepared | None = None
        for candidate in ordered:
            if candidate.similarity < threshold:
                break
            if self.guard:
                t = time.perf_counter()
                veto = near_miss(query, candidate.text)
                timings["guard"] += time.perf_counter() - t
                if veto is not None:
                    refusal = refusal or Decision(False, None, candidate.similarity, f"guard: {veto}")
                    continue
            probability: float | None = None
            if self.verifier is not None:
                t = time.perf_counter()
                if prepared_query is None:
                    prepared_query, prepared = self.verifier.prepare([query, candidate.text])
                else:
                    (prepared,) = self.verifier.prepare([candidate.text])
                probability = self.verifier.probability(prepared_query, prepared)
                timings["verifier"] += time.perf_counter() - t
                cut = self.min_probability or 0.0
                if probability < cut:
                    reason = f"verifier: {probability:.3f} < {cut:.3f}"
                    refusal = refusal or Decision(False, None, candidate.similarity, reason, probability)
                    continue
            decision = Decision(True, candidate.entry_id, candidate.similarity, "hit", probability)
            return self._done(decision, timings, started)
        assert refusal is not None
        return self._done(refusal, timings, started)

    @staticmethod
    def _done(decision: Decision, timings: dict[str, float], started: float) -> Decision:
        timings["total"] = time.perf_counter() - started
        return Decision(
            decision.hit, decision.entry_id, decision.similarity, decision.reason, decision.probability, timings
        )


def compared_text(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The part compared by meaning: the text of the last user message (None if there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return None


def context_key(messages: Sequence[Mapping[str, Any]], **exact: Any) -> str:
    """A hash of everything that must match exactly: every message but the last user message's
    text (system prompt, earlier turns, tool results), plus ``exact`` (model, tools, parameters,
    cache version...). Two requests may share an answer only if their keys are equal."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    shaped = [
        {**dict(m), "content": _blank_text(m.get("content"))} if i == last_user else dict(m)
        for i, m in enumerate(messages)
    ]
    blob = json.dumps({"messages": shaped, "exact": exact}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _blank_text(content: Any) -> Any:
    """The content with its text taken out, and anything else (images, files) kept to be matched."""
    if isinstance(content, list):
        return [{**dict(p), "text": ""} if isinstance(p, Mapping) and p.get("type") == "text" else p for p in content]
    return ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        return "\n".join(str(p) for p in parts)
    return "" if content is None else str(content)
