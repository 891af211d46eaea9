"""Pruning retrieved context: chunks below a relevance threshold are dropped, and the best of the
rest are kept within a token budget.

The request marks its retrieved chunks (documented in the README):

* a text block of a user message with ``"thrifty_chunk": true`` -- or the retriever's relevance
  score, ``"thrifty_chunk": 0.83``, or ``{"score": 0.83}``;
* or a whole user message with ``"thrifty_chunk"`` set the same way.

A chunk with no score is scored by thrifty: the lexical (term-frequency cosine) similarity of the
chunk to the user's own text in the last user message. The marks are removed before the request
goes upstream. No message is ever emptied (its best chunk stays), a whole-message chunk that is
the last user message is never dropped, and a user's own text is never touched.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thrifty.core.compression.wire import API, last_user_index, tool_result_ids

__all__ = ["CHUNK_KEY", "RetrievalResult", "has_chunk_marks", "lexical_score", "prune_chunks"]

CHUNK_KEY = "thrifty_chunk"

_WORD = re.compile(r"\w+")
_STOP = frozenset(
    {
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "this",
        "that",
        "these",
        "those",
        "as",
        "at",
        "by",
        "from",
        "what",
        "which",
        "who",
        "how",
        "why",
        "when",
        "where",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "not",
        "no",
        "yes",
        "you",
        "your",
        "i",
        "we",
        "our",
        "they",
        "their",
        "he",
        "she",
        "his",
        "her",
        "its",
        "about",
        "into",
        "than",
        "then",
        "there",
        "here",
    }
)


@dataclass(frozen=True, slots=True)
class _Chunk:
    message: int
    part: int | None
    """The block's index in the message's content; None for a whole-message chunk."""
    text: str
    score: float
    tokens: int


@dataclass(frozen=True, slots=True)
class RetrievalResult:
    messages: list[Any]
    chunks: int
    dropped: int
    tokens_saved: int


def _terms(text: str) -> Counter[str]:
    return Counter(w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP)


def lexical_score(query: str, chunk: str) -> float:
    """Cosine similarity of the two texts' term counts (stop words left out), in [0, 1]."""
    a, b = _terms(query), _terms(chunk)
    if not a or not b:
        return 0.0
    dot = sum(count * b[term] for term, count in a.items() if term in b)
    return dot / math.sqrt(sum(c * c for c in a.values()) * sum(c * c for c in b.values()))


def _given_score(mark: Any) -> float | None:
    if isinstance(mark, dict):
        mark = mark.get("score")
    if isinstance(mark, bool) or not isinstance(mark, int | float) or not math.isfinite(mark):
        return None
    return float(mark)


def _marked(value: Any) -> bool:
    return isinstance(value, dict) and CHUNK_KEY in value


def has_chunk_marks(messages: list[Any]) -> bool:
    for message in messages:
        if not isinstance(message, dict):
            continue
        if CHUNK_KEY in message:
            return True
        content = message.get("content")
        if isinstance(content, list) and any(_marked(block) for block in content):
            return True
    return False


def _plain_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return " ".join(
        str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text" and not _marked(b)
    )


def _strip(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k != CHUNK_KEY}
    content = out.get("content")
    if isinstance(content, list) and any(_marked(b) for b in content):
        out["content"] = [{k: v for k, v in b.items() if k != CHUNK_KEY} if _marked(b) else b for b in content]
    return out


def prune_chunks(
    messages: list[Any],
    api: API,
    *,
    min_score: float,
    max_tokens: int | None,
    count: Callable[[str], int],
) -> RetrievalResult:
    """The messages with low-scoring and over-budget chunks removed and every mark stripped."""
    last = last_user_index(messages)
    query = _plain_text(messages[last]) if last is not None else ""
    chunks: list[_Chunk] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        if CHUNK_KEY in message and not tool_result_ids(message, api):
            text = _whole_text(message)
            given = _given_score(message[CHUNK_KEY])
            score = given if given is not None else lexical_score(query, text)
            chunks.append(_Chunk(index, None, text, score, count(text)))
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part, block in enumerate(content):
            if _marked(block) and block.get("type") == "text" and isinstance(block.get("text"), str):
                given = _given_score(block[CHUNK_KEY])
                score = given if given is not None else lexical_score(query, block["text"])
                chunks.append(_Chunk(index, part, block["text"], score, count(block["text"])))
    if not chunks:
        return RetrievalResult([_strip(m) if isinstance(m, dict) else m for m in messages], 0, 0, 0)
    kept: set[tuple[int, int | None]] = set()
    used = 0
    for chunk in sorted(chunks, key=lambda c: -c.score):
        if chunk.score < min_score:
            continue
        if max_tokens is not None and used + chunk.tokens > max_tokens:
            continue
        kept.add((chunk.message, chunk.part))
        used += chunk.tokens
    _never_empty(messages, chunks, kept, last)
    dropped = [c for c in chunks if (c.message, c.part) not in kept]
    if not dropped:
        return RetrievalResult([_strip(m) if isinstance(m, dict) else m for m in messages], len(chunks), 0, 0)
    gone_messages = {c.message for c in dropped if c.part is None}
    gone_parts: dict[int, set[int]] = {}
    for c in dropped:
        if c.part is not None:
            gone_parts.setdefault(c.message, set()).add(c.part)
    out: list[Any] = []
    for index, message in enumerate(messages):
        if index in gone_messages:
            continue
        if not isinstance(message, dict):
            out.append(message)
            continue
        if index in gone_parts:
            content = [b for i, b in enumerate(message["content"]) if i not in gone_parts[index]]
            out.append(_strip({**message, "content": content}))
        else:
            out.append(_strip(message))
    return RetrievalResult(out, len(chunks), len(dropped), sum(c.tokens for c in dropped))


def _whole_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _never_empty(
    messages: list[Any], chunks: list[_Chunk], kept: set[tuple[int, int | None]], last: int | None
) -> None:
    """Keep what validity needs: a message keeps at least one block; a whole-message chunk stays
    when it is the last user message, or when removing it would leave a request the API refuses
    (no message, an Anthropic conversation not opening with a user message, two assistant
    messages in a row)."""
    by_message: dict[int, list[_Chunk]] = {}
    for chunk in chunks:
        by_message.setdefault(chunk.message, []).append(chunk)
    for index, group in by_message.items():
        if any((c.message, c.part) in kept for c in group):
            continue
        best = max(group, key=lambda c: c.score)
        if best.part is None:
            before = messages[index - 1] if index > 0 else None
            after = messages[index + 1] if index + 1 < len(messages) else None
            same_roles_meet = (
                isinstance(before, dict) and isinstance(after, dict) and before.get("role") == after.get("role")
            )
            if index in (last, 0) or after is None or same_roles_meet:
                kept.add((best.message, None))
            continue
        content = messages[index].get("content")
        unmarked = [b for b in content if not _marked(b)]
        if not unmarked:
            kept.add((best.message, best.part))
