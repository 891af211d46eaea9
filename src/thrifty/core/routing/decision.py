"""A routing decision and its reason, as the ledger and the ``x-thrifty-route`` header show it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = ["Decision", "DecisionSource", "Escalation", "header_safe"]

DecisionSource = Literal["rules", "classifier", "learned", "cheapest", "default", "header", "off", "pinned", "unrouted"]

_UNSAFE = re.compile(r"[^\x20-\x7e]")


def header_safe(text: str, limit: int = 400) -> str:
    """Printable ASCII only (a header value), cut to ``limit`` characters."""
    text = _UNSAFE.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Escalation:
    model: str
    tier: str
    reason: str
    """What the cheaper answer failed, e.g. ``finish_reason length``."""
    from_model: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What routing decided for one call. ``model`` is the model to serve (or that would have
    been served, in shadow mode); ``requested`` the one the client asked for."""

    source: DecisionSource
    requested: str
    model: str
    reason: str
    tier: str | None = None
    shadow: bool = False
    escalations: tuple[Escalation, ...] = field(default=())

    @property
    def applied(self) -> bool:
        return not self.shadow and self.source not in ("off", "pinned", "unrouted")

    @property
    def served(self) -> str:
        """The model that answered (the last escalation's, if any), or would answer in shadow."""
        return self.escalations[-1].model if self.escalations else self.model

    def escalated(self, escalation: Escalation) -> Decision:
        return replace(self, escalations=(*self.escalations, escalation))

    def describe(self) -> str:
        """One line for the ledger's ``route`` column and the ``x-thrifty-route`` header:
        ``rules: small -> gpt-4o-mini (rule short-questions)``."""
        if self.source in ("off", "pinned", "unrouted"):
            return f"{self.source}: {self.requested} ({self.reason})"
        text = f"{self.source}: {self.tier} -> {self.model} ({self.reason})"
        for step in self.escalations:
            text += f"; escalated: {step.tier} -> {step.model} ({step.reason})"
        if self.shadow:
            text = f"shadow {text}; served {self.requested}"
        return text

    def as_details(self) -> dict[str, Any]:
        """The structured form, for the ledger row's details."""
        details: dict[str, Any] = {
            "source": self.source,
            "requested": self.requested,
            "model": self.model,
            "tier": self.tier,
            "reason": self.reason,
            "applied": self.applied,
        }
        if self.shadow:
            details["shadow"] = True
        if self.escalations:
            details["escalations"] = [
                {"from": e.from_model, "model": e.model, "tier": e.tier, "reason": e.reason} for e in self.escalations
            ]
        return details
