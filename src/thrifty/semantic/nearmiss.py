"""Near-miss pairs: a question and a small edit of it that asks something else, labelled 0.

Embeddings score such pairs high (one changed word in fifteen), so they measure how often a
semantic cache would serve a wrong answer. Edits, each applied where the question allows it:

- ``negate``: "Can I ..." -> "Can't I ...", "Is it ..." -> "Isn't it ...";
- ``number``: the first number changes ("5" -> "6", "2016" -> "2017");
- ``date``: a month, weekday or relative day changes;
- ``unit``: a unit changes to another of its kind ("km" -> "miles");
- ``name``: a product, model, language, company or country changes to another of its kind;
- ``action``: a verb or adjective flips to its opposite ("increase" -> "decrease").

The word lists here are written apart from the guard's, and include words the guard does not know
(countries and cities are not in its lists), so the guard is not simply checked against itself.
Choices are by a hash of the question: the same input gives the same pairs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["KINDS", "NearMiss", "generate", "mutate"]

KINDS = ("negate", "number", "date", "unit", "name", "action")

_AUX = re.compile(
    r"\b(is|are|was|were|do|does|did|can|could|should|would|will|has|have)\b(?=\s+(?:i|you|we|they|he|she|it|"
    r"there|this|that|the|a|an|my|your|our|their|his|her|people|someone|anyone)\b)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\d.])")
_GROUPS = [
    ["January", "February", "March", "April", "June", "July", "August", "September", "October", "November"],
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    ["today", "tomorrow", "yesterday"],
]
_UNITS = [
    ["km", "miles"], ["kilometers", "miles"], ["kg", "pounds"], ["kgs", "lbs"], ["dollars", "euros"],
    ["rupees", "dollars"], ["GB", "TB"], ["MB", "GB"], ["hours", "minutes"], ["days", "weeks"], ["months", "years"],
    ["Celsius", "Fahrenheit"], ["meters", "feet"], ["liters", "gallons"], ["calories", "grams"], ["Mbps", "MBps"],
]  # fmt: skip
_NAMES = [
    ["Python", "Java", "JavaScript", "C++", "Ruby", "PHP", "Go", "Rust"],
    ["iPhone", "Android phone", "Samsung Galaxy", "Pixel"],
    ["Windows", "Mac", "Linux", "Ubuntu"],
    ["Facebook", "Instagram", "Twitter", "LinkedIn", "Snapchat", "WhatsApp"],
    ["Google", "Microsoft", "Amazon", "Apple", "Infosys", "TCS"],
    ["India", "China", "Pakistan", "Japan", "Germany", "Canada", "Australia", "Brazil", "Nigeria"],
    ["Delhi", "Mumbai", "Bangalore", "London", "Paris", "Tokyo", "Berlin", "Sydney", "Toronto"],
    ["GPT-4", "GPT-3.5", "Claude", "Gemini", "Llama"],
    ["Chrome", "Firefox", "Safari"],
    ["MBA", "MS", "PhD", "MTech"],
    ["Trump", "Obama", "Clinton", "Modi", "Putin"],
    ["Quora", "Reddit", "YouTube"],
]
_ACTIONS = [
    ["increase", "decrease"], ["gain", "lose"], ["buy", "sell"], ["start", "stop"], ["enable", "disable"],
    ["upgrade", "downgrade"], ["install", "uninstall"], ["add", "remove"], ["open", "close"], ["best", "worst"],
    ["advantages", "disadvantages"], ["pros", "cons"], ["easiest", "hardest"], ["cheapest", "most expensive"],
    ["more", "less"], ["good", "bad"], ["better", "worse"], ["love", "hate"], ["win", "lose"],
    ["before", "after"], ["legal", "illegal"], ["possible", "impossible"], ["rich", "poor"], ["men", "women"],
    ["boyfriend", "girlfriend"], ["hire", "fire"], ["upload", "download"], ["import", "export"],
    ["join", "leave"], ["strong", "weak"], ["fast", "slow"], ["healthy", "unhealthy"], ["positive", "negative"],
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class NearMiss:
    original: str
    edited: str
    kind: str


def _pick(text: str, salt: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}\x00{text}".encode()).digest()[:4], "big") % n


def _case_like(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _swap_in_groups(text: str, groups: list[list[str]], salt: str) -> str | None:
    for group in groups:
        for word in group:
            pattern = re.compile(rf"(?<![\w+#-]){re.escape(word)}(?![\w+#-])", re.IGNORECASE)
            match = pattern.search(text)
            if match is None:
                continue
            others = [w for w in group if w.lower() != word.lower()]
            replacement = others[_pick(text, salt, len(others))]
            if len(group) == 2:
                replacement = _case_like(match.group(0), replacement)
            return text[: match.start()] + replacement + text[match.end() :]
    return None


def _negate(text: str) -> str | None:
    match = _AUX.search(text)
    if match is None:
        return None
    word = match.group(1)
    lowered = word.lower()
    negated = {"can": "can't", "will": "won't"}.get(lowered, f"{lowered}n't")
    return text[: match.start()] + _case_like(word, negated) + text[match.end() :]


def _number(text: str) -> str | None:
    match = _NUMBER.search(text)
    if match is None:
        return None
    raw = match.group(1)
    value = float(raw)
    if "." in raw:
        new = f"{value * 2:g}"
    elif 1900 <= value <= 2100:
        new = str(int(value) + (1 if _pick(text, "year", 2) else -1))
    elif value == 0:
        new = "1"
    else:
        new = str(int(value) + 1 + _pick(text, "number", max(1, int(value))))
    return text[: match.start()] + new + text[match.end() :]


def mutate(text: str, kind: str) -> str | None:
    """``text`` with one edit of ``kind``, or None when the question has nothing to edit that way."""
    if kind == "negate":
        edited = _negate(text)
    elif kind == "number":
        edited = _number(text)
    elif kind == "date":
        edited = _swap_in_groups(text, _GROUPS, kind)
    elif kind == "unit":
        edited = _swap_in_groups(text, _UNITS, kind)
    elif kind == "name":
        edited = _swap_in_groups(text, _NAMES, kind)
    elif kind == "action":
        edited = _swap_in_groups(text, _ACTIONS, kind)
    else:
        raise ValueError(f"unknown near-miss kind {kind!r}; expected one of {', '.join(KINDS)}")
    return edited if edited is not None and edited != text else None


def generate(questions: Iterable[str], *, per_kind: int | None = None) -> list[NearMiss]:
    """Every edit each question allows, in input order; at most ``per_kind`` of each kind."""
    counts = dict.fromkeys(KINDS, 0)
    out: list[NearMiss] = []
    seen: set[str] = set()
    for question in questions:
        if question in seen:
            continue
        seen.add(question)
        for kind in KINDS:
            if per_kind is not None and counts[kind] >= per_kind:
                continue
            edited = mutate(question, kind)
            if edited is not None:
                out.append(NearMiss(question, edited, kind))
                counts[kind] += 1
    return out
