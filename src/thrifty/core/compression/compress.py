"""Compression of one request body: retrieved-context pruning, whitespace normalisation and
history trimming, in that order, with the tokens each saved.

Invariants (checked by property tests): the system prompt (an Anthropic ``system`` field; OpenAI
system and developer messages) and the last user message's own content are never dropped or
altered; an assistant's tool call is never separated from its result; the result is a valid
request for its API. Summarisation is done in two halves so the summary can come from a model
call in between: ``prepare`` decides, ``finish`` applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thrifty.core.compression.history import (
    MESSAGE_OVERHEAD,
    HistoryPlan,
    apply_history,
    dropped_tokens,
    plan_history,
    window_start,
)
from thrifty.core.compression.retrieval import has_chunk_marks, prune_chunks
from thrifty.core.compression.whitespace import normalise_whitespace
from thrifty.core.compression.wire import API, is_system, last_user_index, map_texts, message_text

__all__ = ["CompressionSettings", "Prepared", "compress_body", "finish", "history_saving", "prepare"]


@dataclass(frozen=True, slots=True)
class CompressionSettings:
    whitespace: bool = False
    retrieval: bool = False
    min_score: float = 0.0
    chunk_tokens: int | None = None
    history: bool = False
    max_turns: int | None = None
    max_tokens: int | None = None


@dataclass(slots=True)
class Prepared:
    body: dict[str, Any]
    """The body after pruning and normalisation, history not yet trimmed."""
    api: API
    history: HistoryPlan | None
    saved: dict[str, int] = field(default_factory=dict)
    """Tokens saved, by technique."""
    notes: dict[str, Any] = field(default_factory=dict)
    original: list[Any] | None = None
    """The messages before whitespace normalisation (what a summary is written from)."""
    count_message: Callable[[Any], int] | None = None
    """How the history plan counted a message: the dropped ones are counted the same way."""

    @property
    def changed(self) -> bool:
        return bool(self.saved) or self.history is not None or bool(self.notes.get("marks_stripped"))

    def dropped_messages(self) -> list[Any]:
        if self.history is None:
            return []
        messages = self.body["messages"]
        messages = self.original if self.original is not None else self.body["messages"]
        return [messages[i] for i in self.history.dropped]


def prepare(
    body: dict[str, Any],
    api: API,
    settings: CompressionSettings,
    count_text: Callable[[str], int],
    *,
    fixed_tokens: int = 0,
    normalise: Callable[[str], str] = normalise_whitespace,
) -> Prepared:
    """``count_text`` counts a text's tokens and ``normalise`` normalises its whitespace (the caller
    may memoise both: a conversation sends its earlier messages again with every turn);
    ``fixed_tokens`` is what the history budget must hold besides the messages (Anthropic's
    system prompt, tool definitions)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return Prepared(body, api, None)
    out = body
    saved: dict[str, int] = {}
    notes: dict[str, Any] = {}
    if has_chunk_marks(messages):
        if settings.retrieval:
            result = prune_chunks(
                messages, api, min_score=settings.min_score, max_tokens=settings.chunk_tokens, count=count_text
            )
            if result.tokens_saved:
                saved["retrieval"] = result.tokens_saved
            notes["chunks"] = result.chunks
            notes["chunks_dropped"] = result.dropped
        else:
            result = prune_chunks(messages, api, min_score=0.0, max_tokens=None, count=count_text)
        notes["marks_stripped"] = True
        messages = result.messages
        out = {**body, "messages": messages}
    history = settings.history and (settings.max_turns is not None or settings.max_tokens is not None)
    original = messages
    if settings.whitespace:
        # Turns outside the window are dropped whatever their whitespace: not worth normalising.
        start = window_start(messages, api, settings.max_turns) if history else 0
        messages, whitespace_saved = _normalise(messages, count_text, normalise, start)
        if whitespace_saved:
            saved["whitespace"] = whitespace_saved
            out = {**out, "messages": messages}
    plan = None
    if history:

        def count_message(message: Any) -> int:
            return count_text(message_text(message)) + MESSAGE_OVERHEAD if isinstance(message, dict) else 0

        plan = plan_history(
            messages,
            api,
            max_turns=settings.max_turns,
            max_tokens=settings.max_tokens,
            count=count_message,
            fixed_tokens=fixed_tokens,
        )
        return Prepared(out, api, plan, saved, notes, original, count_message)
    return Prepared(out, api, plan, saved, notes, original)


def history_saving(prepared: Prepared, summary_tokens: int = 0) -> int:
    """The input tokens the history trim saved: the dropped messages less the summary put in their
    place (``summary_tokens``, 0 without one). Counting the dropped messages is most of the cost
    of compressing a long conversation seen for the first time, and only the ledger needs it: a
    gateway does it while the upstream answers (``finish(..., count_history=False)``)."""
    plan, count = prepared.history, prepared.count_message
    if plan is None or count is None:
        return 0
    dropped = dropped_tokens(prepared.body["messages"], plan, count)
    return dropped - (summary_tokens + 2 * MESSAGE_OVERHEAD if summary_tokens else 0)


def finish(
    prepared: Prepared, summary: str | None = None, summary_tokens: int = 0, *, count_history: bool = True
) -> dict[str, Any]:
    """The final body: history trimmed (with the summary in place of the dropped turns, if given).
    With ``count_history`` the tokens it saved go into ``prepared.saved["history"]`` now; without,
    the caller counts them later with ``history_saving``."""
    plan = prepared.history
    if plan is None:
        return prepared.body
    messages = apply_history(prepared.body["messages"], plan, summary)
    if count_history:
        saved = history_saving(prepared, summary_tokens if summary else 0)
        if saved > 0:
            prepared.saved["history"] = saved
    prepared.notes["messages_dropped"] = len(plan.dropped)
    prepared.notes["turns"] = plan.turns
    prepared.notes["turns_kept"] = plan.turns_kept
    if summary:
        prepared.notes["summarised"] = True
    return {**prepared.body, "messages": messages}


def compress_body(
    body: dict[str, Any],
    api: API,
    settings: CompressionSettings,
    count_text: Callable[[str], int],
    *,
    summary: str | None = None,
    fixed_tokens: int = 0,
) -> tuple[dict[str, Any], Prepared]:
    """Both halves at once (no summary, or one already known)."""
    prepared = prepare(body, api, settings, count_text, fixed_tokens=fixed_tokens)
    summary_tokens = count_text(summary) if summary else 0
    return finish(prepared, summary, summary_tokens), prepared


def _normalise(
    messages: list[Any], count_text: Callable[[str], int], normalise: Callable[[str], str], start: int = 0
) -> tuple[list[Any], int]:
    """Whitespace normalisation of every message from ``start`` on but the system ones and the
    last user message."""
    last = last_user_index(messages)
    out: list[Any] | None = None
    saved = 0
    for index in range(start, len(messages)):
        message = messages[index]
        if index == last or not isinstance(message, dict) or is_system(message):
            continue
        changed = map_texts(message, normalise)
        if changed is None:
            continue
        before = count_text(message_text(message))
        after = count_text(message_text(changed))
        if after >= before:
            continue  # fewer characters but no fewer tokens: leave the message as it was
        if out is None:
            out = list(messages)
        out[index] = changed
        saved += before - after
    return (out if out is not None else messages), saved
