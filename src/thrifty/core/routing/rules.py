"""Rules: conditions on a request that send it to a tier. The first rule that matches decides.

Conditions are checked cheapest first (attribution, capabilities, sizes the byte count settles,
keywords), so that a token count is made only when a rule cannot be decided without one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from thrifty.core.routing.features import RequestFacts

__all__ = ["Rule", "RuleSet"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    tier: int
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None
    min_context_tokens: int | None = None
    max_context_tokens: int | None = None
    has_code: bool | None = None
    keywords: re.Pattern[str] | None = None
    """The keywords, compiled into one case-insensitive alternation."""
    keyword_literals: tuple[str, ...] | None = None
    """The keywords lower-cased, when all are ASCII: an ASCII text that contains none of them as a
    substring cannot match, which a substring search tells many times faster than the pattern."""
    regex: tuple[re.Pattern[str], ...] = ()
    """The regular expressions, each compiled on its own (so each keeps its inline flags)."""
    features: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    capabilities: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        name: str,
        tier: int,
        *,
        keywords: Iterable[str] = (),
        regex: Iterable[str] = (),
        min_prompt_tokens: int | None = None,
        max_prompt_tokens: int | None = None,
        min_context_tokens: int | None = None,
        max_context_tokens: int | None = None,
        has_code: bool | None = None,
        features: Iterable[str] = (),
        tags: Iterable[str] = (),
        capabilities: Iterable[str] = (),
    ) -> Rule:
        keywords = list(keywords)
        words = [rf"(?<!\w){re.escape(k)}(?!\w)" for k in keywords]
        return cls(
            name=name,
            tier=tier,
            min_prompt_tokens=min_prompt_tokens,
            max_prompt_tokens=max_prompt_tokens,
            min_context_tokens=min_context_tokens,
            max_context_tokens=max_context_tokens,
            has_code=has_code,
            keywords=re.compile("|".join(words), re.IGNORECASE) if words else None,
            keyword_literals=tuple(k.lower() for k in keywords) if all(k.isascii() for k in keywords) else None,
            regex=tuple(re.compile(r) for r in regex),
            features=frozenset(features),
            tags=frozenset(tags),
            capabilities=frozenset(capabilities),
        )

    def matches(self, facts: RequestFacts) -> bool:
        if self.features and facts.feature not in self.features:
            return False
        if self.tags and self.tags.isdisjoint(facts.tags):
            return False
        if self.capabilities and not self.capabilities <= facts.needs:
            return False
        if not self._sizes_match(facts):
            return False
        if self.has_code is not None and facts.has_code != self.has_code:
            return False
        if self.keywords is None and not self.regex:
            return True
        text = facts.text
        if self.keywords is not None and self._may_have_keyword(facts) and self.keywords.search(text) is not None:
            return True
        return any(r.search(text) is not None for r in self.regex)

    def _may_have_keyword(self, facts: RequestFacts) -> bool:
        literals = self.keyword_literals
        lowered = facts.lowered_ascii if literals is not None else None
        if literals is None or lowered is None:
            return True  # case folding beyond ASCII: leave it to the pattern
        return any(k in lowered for k in literals)

    def _sizes_match(self, facts: RequestFacts) -> bool:
        low, high = self.min_prompt_tokens, self.max_prompt_tokens
        if low is not None or high is not None:
            bound = facts.prompt_bytes
            if low is not None and bound < low:
                return False
            if not (high is not None and bound <= high and low is None):
                tokens = facts.prompt_tokens
                if (low is not None and tokens < low) or (high is not None and tokens > high):
                    return False
        low, high = self.min_context_tokens, self.max_context_tokens
        if low is not None or high is not None:
            bound = facts.body_size
            if low is not None and bound < low:
                return False
            if not (high is not None and bound <= high and low is None):
                tokens = facts.context_tokens
                if (low is not None and tokens < low) or (high is not None and tokens > high):
                    return False
        return True


class RuleSet:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match(self, facts: RequestFacts) -> Rule | None:
        for rule in self.rules:
            if rule.matches(facts):
                return rule
        return None
