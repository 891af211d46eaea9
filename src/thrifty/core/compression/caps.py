"""Output caps: max_tokens from the caller's plan, scaled by urgency, never above what the client
set; and an optional instruction to answer concisely, added beside the system prompt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.core.compression.wire import API, is_system

__all__ = ["CapResult", "PlanTable", "add_instruction", "apply_cap"]

_COMPLETION_FIELD_MODELS = ("o1", "o3", "o4", "gpt-5")
"""OpenAI models that take only ``max_completion_tokens``."""


@dataclass(frozen=True, slots=True)
class PlanTable:
    plans: Mapping[str, int]
    default_plan: str | None
    keys: Mapping[str, str]
    users: Mapping[str, str]
    teams: Mapping[str, str]
    features: Mapping[str, str]
    urgency: Mapping[str, float]

    def plan_for(
        self,
        *,
        key_id: str | None,
        user: str | None,
        team: str | None,
        feature: str | None,
        asked: str | None = None,
    ) -> str | None:
        """``asked``: the plan the client's header names, when it is trusted."""
        if asked is not None and asked in self.plans:
            return asked
        for name, table in ((key_id, self.keys), (user, self.users), (team, self.teams), (feature, self.features)):
            if name is not None and name in table:
                return table[name]
        return self.default_plan

    def cap(self, plan: str, urgency: str | None) -> int:
        factor = self.urgency.get(urgency or "normal", 1.0) if urgency is not None else self.urgency.get("normal", 1.0)
        return max(1, round(self.plans[plan] * factor))


@dataclass(frozen=True, slots=True)
class CapResult:
    body: dict[str, Any]
    before: int | None
    """The client's max_tokens (None: not set)."""
    after: int
    applied: bool


def _field(body: Mapping[str, Any], api: API) -> str:
    if api == "anthropic":
        return "max_tokens"
    if "max_completion_tokens" in body:
        return "max_completion_tokens"
    if "max_tokens" in body:
        return "max_tokens"
    model = str(body.get("model", "")).lower()
    return "max_completion_tokens" if model.startswith(_COMPLETION_FIELD_MODELS) else "max_tokens"


def apply_cap(body: dict[str, Any], api: API, cap: int) -> CapResult:
    """Lower the output limit to ``cap``; a lower limit the client set is left alone."""
    name = _field(body, api)
    current = body.get(name)
    before = current if isinstance(current, int) and not isinstance(current, bool) else None
    if before is not None and before <= cap:
        return CapResult(body, before, before, False)
    out = dict(body)
    out[name] = cap
    if api == "openai" and name == "max_completion_tokens" and isinstance(out.get("max_tokens"), int):
        out["max_tokens"] = min(out["max_tokens"], cap)
    return CapResult(out, before, cap, True)


def add_instruction(body: dict[str, Any], api: API, instruction: str) -> dict[str, Any]:
    """The instruction as its own system message (OpenAI, after the leading ones) or its own
    system block (Anthropic, after the client's); the client's system prompt is not changed."""
    if api == "anthropic":
        system = body.get("system")
        block = {"type": "text", "text": instruction}
        if system is None or system == "":
            return {**body, "system": instruction}
        if isinstance(system, str):
            return {**body, "system": [{"type": "text", "text": system}, block]}
        if isinstance(system, list):
            return {**body, "system": [*system, block]}
        return body
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    position = 0
    while position < len(messages) and isinstance(messages[position], dict) and is_system(messages[position]):
        position += 1
    role = messages[0].get("role") if position and isinstance(messages[0], dict) else "system"
    inserted = {"role": role, "content": instruction}
    return {**body, "messages": [*messages[:position], inserted, *messages[position:]]}
