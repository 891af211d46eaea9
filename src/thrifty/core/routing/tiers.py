"""Tiers of models, and the cheapest capable model for a request.

Tiers are ordered from cheapest and weakest (0) to strongest. For a chosen tier, the candidates
are the models of that tier and every tier above it, up to a ceiling (by default the tier of the
model the client asked for: routing never serves more than was asked). Among the candidates that
meet the request's needs -- tools, vision, JSON mode, a context window that holds the input and
the requested output -- the one with the lowest expected cost wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Choice", "ModelOption", "TierTable"]


@dataclass(frozen=True, slots=True)
class ModelOption:
    name: str
    tier: int
    capabilities: frozenset[str]
    context_window: int | None
    input_per_mtok: Decimal | None
    """USD per million input tokens; None when the price is unknown (such a model ranks last)."""
    output_per_mtok: Decimal | None

    def expected_cost(self, input_tokens: int, output_tokens: int) -> float:
        """For ranking only (money that is recorded is always Decimal)."""
        if self.input_per_mtok is None or self.output_per_mtok is None:
            return float("inf")
        return float(self.input_per_mtok) * input_tokens + float(self.output_per_mtok) * output_tokens


@dataclass(frozen=True, slots=True)
class Choice:
    model: ModelOption
    skipped: tuple[str, ...] = ()
    """Cheaper candidates left out, each with why (for the decision's reason)."""


class TierTable:
    def __init__(self, names: Sequence[str], options: Sequence[ModelOption]) -> None:
        if not names:
            raise ValueError("at least one tier is needed")
        self.names = tuple(names)
        self.options = tuple(options)
        self._index = {name: i for i, name in enumerate(self.names)}
        self._tier_of: dict[str, int] = {}
        for option in self.options:
            self._tier_of.setdefault(option.name, option.tier)
            self._tier_of[option.name] = min(self._tier_of[option.name], option.tier)
        self.top = len(self.names) - 1
        self.middle = len(self.names) // 2
        windows = [o.context_window for o in self.options if o.context_window is not None]
        self._smallest_window = min(windows) if windows else None

    def index(self, name: str) -> int | None:
        return self._index.get(name)

    def tier_of(self, model: str) -> int | None:
        """The lowest tier that lists ``model``; None when no tier does."""
        return self._tier_of.get(model)

    def choose(
        self,
        tier: int,
        ceiling: int,
        needs: frozenset[str],
        *,
        input_bound: int,
        input_tokens: Callable[[], int],
        max_output: int | None,
        expected_output: int,
    ) -> Choice | None:
        """The cheapest capable model from ``tier`` up to ``ceiling``; None when none qualifies.

        ``input_bound`` is an upper bound on the input tokens known for free (the body's bytes);
        ``input_tokens`` counts them exactly, and is called only when a window is in doubt."""
        out = max_output or 0
        exact: int | None = None
        if self._smallest_window is not None and input_bound + out > self._smallest_window:
            exact = input_tokens()
        # For ranking, a byte count is turned into a rough token count (about four bytes a token).
        size = exact if exact is not None else input_bound // 4
        expected_out = min(max_output, expected_output) if max_output else expected_output
        best: ModelOption | None = None
        best_cost = float("inf")
        skipped: list[str] = []
        for option in self.options:
            if not tier <= option.tier <= ceiling:
                continue
            missing = needs - option.capabilities
            if missing:
                skipped.append(f"{option.name} lacks {', '.join(sorted(missing))}")
                continue
            if option.context_window is not None and exact is not None and exact + out > option.context_window:
                skipped.append(f"{option.name}'s window is too small")
                continue
            cost = option.expected_cost(size, expected_out)
            if best is None or cost < best_cost:
                best, best_cost = option, cost
        if best is None:
            return None
        return Choice(best, tuple(skipped))
