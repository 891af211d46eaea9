"""Conversation history: a sliding window of turns, a token budget, and room for a summary.

A turn is a user message and everything after it up to the next user message that opens a turn
(assistant replies, tool calls and their results). Whole turns are dropped, oldest first, so an
assistant's tool call and its result are never separated; system and developer messages are
never dropped, wherever they are; the last turn, which holds the last user message, is always
kept. Messages before the first user message (an assistant's greeting) go with the first turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thrifty.core.compression.wire import API, is_system, is_turn_start

__all__ = ["HistoryPlan", "apply_history", "dropped_tokens", "plan_history", "summary_messages", "window_start"]

MESSAGE_OVERHEAD = 4
"""Tokens of framing counted for each message on top of its text (an estimate across providers)."""

SUMMARY_INTRO = "Summary of the earlier conversation (older turns were condensed):\n\n"
SUMMARY_ACK = "Understood."


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    keep: tuple[int, ...]
    """Indices of the messages kept, in order."""
    dropped: tuple[int, ...]
    """Indices of the messages dropped (never a system message)."""
    turns: int
    turns_kept: int


def _turns(messages: list[Any], api: API) -> list[tuple[int, int]]:
    starts = [i for i, m in enumerate(messages) if isinstance(m, dict) and is_turn_start(m, api)]
    if not starts:
        return []
    bounds = [0, *starts[1:], len(messages)]
    return [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]


def window_start(messages: list[Any], api: API, max_turns: int | None) -> int:
    """The index of the first message of the oldest turn a window of ``max_turns`` keeps (0: the
    window keeps every turn). Messages before it, system ones apart, are dropped whatever else
    happens, so there is no point in normalising them."""
    if max_turns is None:
        return 0
    turns = _turns(messages, api)
    return turns[len(turns) - max_turns][0] if len(turns) > max_turns else 0


def plan_history(
    messages: list[Any],
    api: API,
    *,
    max_turns: int | None,
    max_tokens: int | None,
    count: Callable[[Any], int],
    fixed_tokens: int = 0,
) -> HistoryPlan | None:
    """Which turns to keep; None when nothing is to be dropped. ``count(message)`` gives a
    message's tokens; ``fixed_tokens`` is what the budget must also hold (an Anthropic system
    prompt, tools). Only the messages the decision needs are counted: the system ones and the
    turns from the newest back to the first that does not fit. What the dropped ones weigh is
    ``dropped_tokens``' job, for the ledger, which need not hold up the request."""
    turns = _turns(messages, api)
    if len(turns) <= 1:
        return None
    first_kept = 0
    if max_turns is not None and len(turns) > max_turns:
        first_kept = len(turns) - max_turns
    if max_tokens is not None:
        used = fixed_tokens + sum(count(m) for m in messages if is_system(m))
        # Walk back from the newest turn; the last turn always stays.
        for k in range(len(turns) - 1, first_kept - 1, -1):
            start, end = turns[k]
            size = sum(count(messages[i]) for i in range(start, end) if not is_system(messages[i]))
            if k < len(turns) - 1 and used + size > max_tokens:
                first_kept = k + 1
                break
            used += size
    if first_kept == 0:
        return None
    cut = turns[first_kept][0]
    keep = tuple(i for i in range(len(messages)) if i >= cut or is_system(messages[i]))
    dropped = tuple(i for i in range(cut) if not is_system(messages[i]))
    if not dropped:
        return None
    return HistoryPlan(keep, dropped, len(turns), len(turns) - first_kept)


def dropped_tokens(messages: list[Any], plan: HistoryPlan, count: Callable[[Any], int]) -> int:
    """The tokens of the messages the plan drops (``messages`` as given to ``plan_history``)."""
    return sum(count(messages[i]) for i in plan.dropped)


def summary_messages(summary: str) -> list[dict[str, Any]]:
    """The summary as a user message and a short assistant reply: valid in both APIs wherever a
    turn may start, and the client's system prompt stays as it was."""
    return [{"role": "user", "content": SUMMARY_INTRO + summary}, {"role": "assistant", "content": SUMMARY_ACK}]


def apply_history(messages: list[Any], plan: HistoryPlan, summary: str | None = None) -> list[Any]:
    """The kept messages, with the summary (if any) where the dropped turns were: after the
    system messages that led the conversation."""
    kept = [messages[i] for i in plan.keep]
    if not summary:
        return kept
    position = 0
    while position < len(kept) and isinstance(kept[position], dict) and is_system(kept[position]):
        position += 1
    return kept[:position] + summary_messages(summary) + kept[position:]
