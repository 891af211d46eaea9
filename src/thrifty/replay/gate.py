"""The cost gate: a candidate's cost per request, per session or per month against a baseline's,
within a threshold or not, and which features and calls grew and by how much."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from thrifty.core.pricing import format_usd
from thrifty.errors import ThriftyError
from thrifty.replay.report import usd

if TYPE_CHECKING:
    from thrifty.replay.engine import ReplayRun

__all__ = ["CallCost", "GateError", "GateResult", "Growth", "Per", "costs_of_report", "costs_of_run", "gate"]

Per = Literal["request", "session", "month"]
DAYS_PER_MONTH = 30


class GateError(ThriftyError, ValueError):
    """The gate cannot decide (bad input): exit status 2."""


@dataclass(frozen=True, slots=True)
class CallCost:
    session: str
    feature: str
    call: str
    """The call's name within its session (a sample's ``call``), else the model it asked for."""
    cost: Decimal | None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Growth:
    kind: Literal["feature", "call"]
    name: str
    before: Decimal
    after: Decimal

    @property
    def delta(self) -> Decimal:
        return self.after - self.before

    @property
    def percent(self) -> Decimal | None:
        return None if self.before == 0 else (self.delta / self.before * 100)

    def text(self, unit: str) -> str:
        return f"{self.kind} {self.name}: {usd(self.before)} -> {usd(self.after)} {unit} ({_pct(self.percent)})"


@dataclass
class GateResult:
    per: Per
    unit: str
    baseline: Decimal
    candidate: Decimal
    max_increase: Decimal
    """A fraction: 0.2 is 20%."""
    grew: list[Growth] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    sources: tuple[str, str] = ("", "")

    @property
    def increase(self) -> Decimal | None:
        """A fraction; None when the baseline costs nothing."""
        if self.baseline == 0:
            return None if self.candidate > 0 else Decimal(0)
        return (self.candidate - self.baseline) / self.baseline

    @property
    def passed(self) -> bool:
        increase = self.increase
        return increase is not None and increase <= self.max_increase

    def percent(self) -> Decimal | None:
        increase = self.increase
        return None if increase is None else increase * 100

    def text(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"{verdict}: cost {self.unit} {usd(self.baseline)} -> {usd(self.candidate)} "
            f"({_pct(self.percent())}; limit +{_num(self.max_increase * 100)}%)",
            f"baseline: {self.sources[0]}",
            f"candidate: {self.sources[1]}",
        ]
        if not self.passed:
            lines += [f"grew: {growth.text(self.unit)}" for growth in self.grew] or ["grew: (nothing in particular)"]
        lines += [f"assumption: {text}" for text in self.assumptions]
        return "\n".join(lines)

    def markdown(self) -> str:
        verdict = "passed" if self.passed else "failed"
        mark = "\u2705" if self.passed else "\u274c"
        out = [
            f"### {mark} thrifty cost gate {verdict}: {_pct(self.percent())} {self.unit} "
            f"(limit +{_num(self.max_increase * 100)}%)",
            "",
            "| | baseline | candidate | change |",
            "|---|---:|---:|---:|",
            f"| cost {self.unit} | {usd(self.baseline)} | {usd(self.candidate)} | {_pct(self.percent())} |",
        ]
        for growth in self.grew[:20]:
            cells = (f"{growth.kind} `{growth.name}`", usd(growth.before), usd(growth.after), _pct(growth.percent))
            out.append("| " + " | ".join(cells) + " |")
        out += ["", f"Baseline: `{self.sources[0]}`; candidate: `{self.sources[1]}`."]
        if self.assumptions:
            out += ["", "Assumptions:", *[f"- {text}" for text in self.assumptions]]
        return "\n".join(out) + "\n"

    def as_json(self) -> dict[str, Any]:
        percent = self.percent()
        return {
            "passed": self.passed,
            "per": self.per,
            "baseline_usd": format_usd(self.baseline),
            "candidate_usd": format_usd(self.candidate),
            "increase_percent": None if percent is None else str(percent.quantize(Decimal("0.01"))),
            "max_increase_percent": str(self.max_increase * 100),
            "grew": [
                {
                    "kind": g.kind,
                    "name": g.name,
                    "baseline_usd": format_usd(g.before),
                    "candidate_usd": format_usd(g.after),
                    "percent": None if g.percent is None else str(g.percent.quantize(Decimal("0.01"))),
                }
                for g in self.grew
            ],
            "assumptions": self.assumptions,
            "baseline": self.sources[0],
            "candidate": self.sources[1],
        }


def _pct(value: Decimal | None) -> str:
    return "new cost" if value is None else f"{'+' if value >= 0 else ''}{_num(value)}%"


def _num(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1'))}"


def costs_of_run(run: ReplayRun) -> list[CallCost]:
    return [
        CallCost(
            session=c.item.call.session or f"line:{c.item.line}",
            feature=c.item.call.feature or "-",
            call=c.item.call.label or c.item.model,
            cost=c.cost,
            line=c.item.line,
        )
        for c in run.calls
    ]


def costs_of_report(document: Mapping[str, Any], source: str) -> list[CallCost]:
    """The candidate side's calls of a ``thrifty replay --json`` output."""
    calls = document.get("calls")
    rows = calls.get("candidate") if isinstance(calls, Mapping) else None
    if not isinstance(rows, list):
        raise GateError(f"{source}: not a thrifty replay --json output (no calls.candidate)")
    out = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise GateError(f"{source}: calls.candidate[{index}]: expected an object")
        cost = row.get("cost")
        line = row.get("line")
        out.append(
            CallCost(
                session=str(row.get("session_id") or f"line:{line}"),
                feature=str(row.get("feature") or "-"),
                call=str(row.get("call") or row.get("model") or "-"),
                cost=None if cost is None else Decimal(str(cost)),
                line=line if isinstance(line, int) else None,
            )
        )
    return out


def gate(
    baseline: Sequence[CallCost],
    candidate: Sequence[CallCost],
    *,
    max_increase: Decimal,
    per: Per = "session",
    sessions_per_day: int | None = None,
    assumptions: Iterable[str] = (),
    sources: tuple[str, str] = ("baseline", "candidate"),
) -> GateResult:
    if per == "month" and not sessions_per_day:
        raise GateError("--per month needs --sessions-per-day N")
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        if not side:
            raise GateError(f"the {name} has no calls to cost")
        unpriced = [c for c in side if c.cost is None]
        if unpriced:
            where = ", ".join(f"line {c.line}" if c.line else c.call for c in unpriced[:5])
            raise GateError(
                f"the {name} has {len(unpriced)} call(s) with no known price ({where}): an unknown cost is not $0; "
                "price the model (prices:, --price-override)"
            )
    unit = {"request": "per request", "session": "per session", "month": "per month"}[per]
    scale_b, scale_c = _scale(baseline, per, sessions_per_day), _scale(candidate, per, sessions_per_day)
    result = GateResult(
        per=per,
        unit=unit,
        baseline=_total(baseline) * scale_b,
        candidate=_total(candidate) * scale_c,
        max_increase=max_increase,
        assumptions=list(assumptions),
        sources=sources,
    )
    kinds: tuple[Literal["feature", "call"], ...] = ("feature", "call")
    for kind in kinds:
        before = _grouped(baseline, kind)
        after = _grouped(candidate, kind)
        for name in sorted(set(before) | set(after)):
            b = before.get(name, Decimal(0)) * scale_b
            a = after.get(name, Decimal(0)) * scale_c
            if a > b:
                result.grew.append(Growth(kind, name, b, a))
    result.grew.sort(key=lambda g: (g.kind != "feature", -g.delta))
    return result


def _scale(side: Sequence[CallCost], per: Per, sessions_per_day: int | None) -> Decimal:
    if per == "request":
        return Decimal(1) / len(side)
    sessions = len({c.session for c in side})
    per_session = Decimal(1) / sessions
    if per == "session":
        return per_session
    return per_session * (sessions_per_day or 0) * DAYS_PER_MONTH


def _total(side: Sequence[CallCost]) -> Decimal:
    return sum((c.cost for c in side if c.cost is not None), Decimal(0))


def _grouped(side: Sequence[CallCost], kind: str) -> dict[str, Decimal]:
    groups: dict[str, Decimal] = defaultdict(Decimal)
    for c in side:
        key = c.feature if kind == "feature" else f"{c.feature}/{c.call}"
        groups[key] += c.cost or Decimal(0)
    return groups
