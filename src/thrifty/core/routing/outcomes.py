"""Labelled routing outcomes in the RouteLLM format: a ``prompt`` column and, for each of two
models, a column of its correctness (True/False) or score, and optionally ``<model>_response``
holding its answer (whose tokens then price the answer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from thrifty.errors import OutcomesError

__all__ = ["OutcomeTable", "OutcomesError", "parse_outcomes"]

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


@dataclass(frozen=True, slots=True)
class OutcomeTable:
    weak_model: str
    strong_model: str
    prompts: tuple[str, ...]
    weak: tuple[float, ...]
    strong: tuple[float, ...]
    weak_responses: tuple[str, ...] | None
    strong_responses: tuple[str, ...] | None

    def __len__(self) -> int:
        return len(self.prompts)


def _value(text: str | None) -> float | None:
    if text is None:
        return None
    cleaned = text.strip().lower()
    if cleaned in _TRUE:
        return 1.0
    if cleaned in _FALSE:
        return 0.0
    try:
        return float(cleaned)
    except ValueError:
        return None


def _numeric_column(rows: Sequence[Mapping[str, str]], column: str) -> bool:
    return bool(rows) and all(_value(r.get(column)) is not None for r in rows[:50])


def parse_outcomes(
    header: Sequence[str],
    rows: Sequence[Mapping[str, str]],
    *,
    prompt_column: str = "prompt",
    weak: str | None = None,
    strong: str | None = None,
) -> OutcomeTable:
    """The weak model is the one with the lower mean quality unless named."""
    if prompt_column not in header:
        raise OutcomesError(f"no {prompt_column!r} column (columns: {', '.join(header)})")
    candidates = [c for c in header if c != prompt_column and not c.endswith("_response")]
    for name in (weak, strong):
        if name is not None and name not in header:
            raise OutcomesError(f"no column {name!r} (columns: {', '.join(header)})")
    if weak is not None and strong is not None:
        models = [weak, strong]
    else:
        scored = [c for c in candidates if c not in (weak, strong) and _numeric_column(rows, c)]
        models = [weak, *scored] if weak is not None else [*scored, strong] if strong is not None else scored
    if len(models) != 2:
        found = ", ".join(map(str, models)) or "none"
        raise OutcomesError(
            f"expected the results of exactly two models, found {len(models)} ({found}); "
            "name them with --weak and --strong"
        )
    if not rows:
        raise OutcomesError("no rows")
    names = [str(m) for m in models]
    values: dict[str, list[float]] = {m: [] for m in names}
    prompts: list[str] = []
    for number, row in enumerate(rows, start=2):
        prompt = row.get(prompt_column)
        if not prompt:
            raise OutcomesError(f"row {number}: empty prompt")
        prompts.append(prompt)
        for model in names:
            value = _value(row.get(model))
            if value is None:
                raise OutcomesError(f"row {number}, column {model!r}: {row.get(model)!r} is not True/False or a number")
            values[model].append(value)
    first, second = names
    if weak is None and strong is None:
        mean = {m: sum(v) / len(v) for m, v in values.items()}
        first, second = sorted(names, key=lambda m: mean[m])

    def responses(model: str) -> tuple[str, ...] | None:
        column = f"{model}_response"
        if column not in header:
            return None
        return tuple(row.get(column) or "" for row in rows)

    return OutcomeTable(
        weak_model=first,
        strong_model=second,
        prompts=tuple(prompts),
        weak=tuple(values[first]),
        strong=tuple(values[second]),
        weak_responses=responses(first),
        strong_responses=responses(second),
    )
