"""Routing: pick the cheapest model that answers a request well, and prove it on data.

Pure logic, no I/O: request facts and rules (``features``, ``rules``), tiers and the cheapest
capable model (``tiers``), answer checks for escalation (``checks``), the learned router and its
embedding (``learned``, ``embedding``: these two need numpy, so import them where they are used,
not here), and the evaluation metrics (``evaluate``).
"""

from __future__ import annotations

from thrifty.core.routing.checks import Answer, AnswerCheck, ToolCallView
from thrifty.core.routing.decision import Decision, Escalation
from thrifty.core.routing.features import RequestFacts
from thrifty.core.routing.rules import Rule, RuleSet
from thrifty.core.routing.tiers import ModelOption, TierTable

__all__ = [
    "Answer",
    "AnswerCheck",
    "Decision",
    "Escalation",
    "ModelOption",
    "RequestFacts",
    "Rule",
    "RuleSet",
    "TierTable",
    "ToolCallView",
]
