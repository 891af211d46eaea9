"""What a replay came to, side by side with its baseline: cost, savings by strategy, model mix,
cache hit rates, routing decisions, how the output tokens were known, and quality where labels
are given (an outcomes CSV like ``thrifty eval router``'s: a ``prompt`` column, then a column per
model of whether its answer was right: True/False or a score)."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from thrifty.core.pricing import format_usd
from thrifty.core.routing.features import last_user_text
from thrifty.errors import ThriftyError
from thrifty.wire.formats import wire_format

if TYPE_CHECKING:
    from thrifty.replay.engine import ReplayedCall, ReplayRun

__all__ = ["Labels", "LabelsError", "parse_labels", "render_html", "render_text", "report", "summarise", "usd"]

_TRUE = {"true": 1.0, "yes": 1.0, "1": 1.0, "false": 0.0, "no": 0.0, "0": 0.0}


class LabelsError(ThriftyError, ValueError):
    """An outcomes file that cannot be read."""


@dataclass
class Labels:
    by_prompt: dict[str, dict[str, float]]
    used: set[str] = field(default_factory=set)

    def score(self, prompt: str, model: str | None) -> float | None:
        row = self.by_prompt.get(prompt.strip())
        if row is None:
            return None
        self.used.add(prompt.strip())
        return row.get(model) if model is not None else None

    @property
    def unmatched(self) -> int:
        return len(self.by_prompt) - len(self.used)


def parse_labels(text: str, source: str) -> Labels:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if "prompt" not in header:
        raise LabelsError(f"{source}: no 'prompt' column (columns: {', '.join(header) or 'none'})")
    models = [c for c in header if c != "prompt" and not c.endswith("_response")]
    if not models:
        raise LabelsError(f"{source}: no model columns beside 'prompt'")
    by_prompt: dict[str, dict[str, float]] = {}
    for number, row in enumerate(reader, start=2):
        prompt = (row.get("prompt") or "").strip()
        if not prompt:
            raise LabelsError(f"{source}: row {number}: empty prompt")
        scores: dict[str, float] = {}
        for model in models:
            raw = (row.get(model) or "").strip().lower()
            if not raw:
                continue
            value = _TRUE.get(raw)
            if value is None:
                try:
                    value = float(raw)
                except ValueError:
                    where = f"{source}: row {number}, column {model!r}"
                    raise LabelsError(f"{where}: {raw!r} is not True/False or a number") from None
            scores[model] = value
        by_prompt[prompt] = scores
    return Labels(by_prompt)


@dataclass
class _Tally:
    """One side's figures, added up call by call."""

    total: Decimal = Decimal(0)
    unpriced: int = 0
    counterfactual: Decimal = Decimal(0)
    savings: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    models: dict[str, list[Any]] = field(default_factory=dict)
    features: dict[str, list[Any]] = field(default_factory=dict)
    cache: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    basis: Counter[str] = field(default_factory=Counter)
    sessions: set[str] = field(default_factory=set)
    recorded: Decimal = Decimal(0)
    recorded_known: int = 0
    scored: list[float] = field(default_factory=list)
    unlabelled: int = 0

    def add(self, replayed: ReplayedCall, labels: Labels | None) -> None:
        record = replayed.record
        cost = replayed.cost
        if cost is None:
            self.unpriced += 1
        else:
            self.total += cost
        for row in (*replayed.extras, record):
            for strategy, amount in row.savings.items():
                self.savings[strategy] += amount
            if row.counterfactual_cost is not None:
                self.counterfactual += row.counterfactual_cost
        captured = replayed.item.call
        for groups, key in (
            (self.models, record.served_model or replayed.item.model),
            (self.features, captured.feature or "-"),
        ):
            entry = groups.setdefault(key, [0, Decimal(0)])
            entry[0] += 1
            entry[1] += cost or Decimal(0)
        self.cache[record.cache_status or "-"] += 1
        if record.route:
            self.routes[record.route.split(":", 1)[0]] += 1
        self.basis[replayed.basis] += 1
        self.sessions.add(captured.session or f"line:{replayed.item.line}")
        if captured.outcome is not None and captured.outcome.cost is not None:
            self.recorded += captured.outcome.cost
            self.recorded_known += 1
        if labels is not None:
            prompt = last_user_text(wire_format(captured.api).parse_request(captured.body))
            score = labels.score(prompt, record.served_model)
            if score is None:
                self.unlabelled += 1
            else:
                self.scored.append(score)


def summarise(run: ReplayRun, *, scale: Decimal = Decimal(1), labels: Labels | None = None) -> dict[str, Any]:
    """One side of the report, as JSON-able values (money as exact decimal strings)."""
    calls = run.calls
    tally = _Tally()
    for replayed in calls:
        tally.add(replayed, labels)
    total, cache = tally.total, tally.cache
    looked_up = sum(cache[s] for s in ("hit", "semantic", "miss"))
    out: dict[str, Any] = {
        "config": run.config,
        "calls": len(calls),
        "cost_usd": _money(total * scale),
        "unpriced_calls": tally.unpriced,
        "counterfactual_usd": _money(tally.counterfactual * scale),
        "savings_usd": {k: _money(v * scale) for k, v in sorted(tally.savings.items())},
        "per_request_usd": _money(total / len(calls)) if calls else None,
        "sessions": len(tally.sessions),
        "per_session_usd": _money(total / len(tally.sessions)) if tally.sessions else None,
        "models": {
            name: {"calls": n, "share": round(n / len(calls), 4), "cost_usd": _money(c * scale)}
            for name, (n, c) in sorted(tally.models.items(), key=lambda kv: -kv[1][1])
        },
        "features": {n: {"calls": k, "cost_usd": _money(c * scale)} for n, (k, c) in sorted(tally.features.items())},
        "cache": {
            "statuses": dict(sorted(cache.items())),
            "exact_hit_rate": round(cache["hit"] / looked_up, 4) if looked_up else None,
            "semantic_hit_rate": round(cache["semantic"] / looked_up, 4) if looked_up else None,
        },
        "routes": dict(sorted(tally.routes.items())),
        "output_tokens": dict(sorted(tally.basis.items())),
        "seconds": round(run.seconds, 3),
    }
    if tally.recorded_known:
        out["recorded_cost_usd"] = _money(tally.recorded)
        out["recorded_calls"] = tally.recorded_known
    if labels is not None:
        scored = tally.scored
        out["quality"] = {
            "labelled_calls": len(scored),
            "mean_correct": round(sum(scored) / len(scored), 4) if scored else None,
            "unlabelled_calls": tally.unlabelled,
        }
    return out


def report(
    candidate: ReplayRun,
    baseline: ReplayRun | None,
    *,
    scale: Decimal = Decimal(1),
    labels: Labels | None = None,
    what_ifs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole report: the traffic, each side, the difference, and what is estimated."""
    traffic = candidate.traffic
    out: dict[str, Any] = {
        "traffic": {
            "source": traffic.source,
            "lines": len(traffic.items) + len(traffic.bad),
            "skipped": len(traffic.bad) + len(candidate.unserved),
            "bad_lines": [{"line": b.line, "error": b.message} for b in (*traffic.bad, *candidate.unserved)],
        },
        "what_ifs": dict(what_ifs or {}),
        "candidate": summarise(candidate, scale=scale, labels=labels),
    }
    if labels is not None:
        out["candidate"]["quality"]["unmatched_labels"] = labels.unmatched
    if baseline is not None:
        base_labels = Labels(labels.by_prompt) if labels is not None else None
        out["baseline"] = summarise(baseline, labels=base_labels)
        if base_labels is not None:
            out["baseline"]["quality"]["unmatched_labels"] = base_labels.unmatched
        out["change"] = _change(Decimal(out["baseline"]["cost_usd"]), Decimal(out["candidate"]["cost_usd"]))
    out["notes"] = _notes(out)
    out["calls"] = {
        "candidate": [c.as_json() for c in candidate.calls],
        **({"baseline": [c.as_json() for c in baseline.calls]} if baseline is not None else {}),
    }
    return out


def _money(amount: Decimal) -> str:
    return format_usd(amount)


def _change(before: Decimal, after: Decimal) -> dict[str, Any]:
    return {
        "cost_usd": _money(after - before),
        "percent": None if before == 0 else str(((after - before) / before * 100).quantize(Decimal("0.01"))),
    }


def _notes(out: Mapping[str, Any]) -> list[str]:
    notes = []
    for side in ("candidate", "baseline"):
        summary = out.get(side)
        if summary is None:
            continue
        basis = summary["output_tokens"]
        if basis.get("estimated"):
            notes.append(
                f"{side}: {basis['estimated']} call(s) served by another model than recorded: their output "
                "tokens are an estimate (the recorded output token count); input tokens are counted exactly"
            )
        if basis.get("assumed"):
            notes.append(
                f"{side}: {basis['assumed']} call(s) had no recorded usage: output tokens assumed (the line's "
                "output_tokens, else its max_tokens, else --output-tokens)"
            )
        if summary["unpriced_calls"]:
            notes.append(f"{side}: {summary['unpriced_calls']} call(s) have no known price: not in the cost")
    bad = out["traffic"]["bad_lines"]
    if bad:
        shown = "; ".join(f"line {b['line']}: {b['error']}" for b in bad[:10])
        more = f"; and {len(bad) - 10} more (see --json)" if len(bad) > 10 else ""
        notes.append(f"{len(bad)} line(s) skipped: {shown}{more}")
    notes.append("budgets and rate limits are not replayed")
    return notes


def render_text(out: Mapping[str, Any]) -> str:
    sides = [s for s in ("baseline", "candidate") if s in out]
    rows: list[tuple[str, ...]] = [("", *sides)]

    def row(label: str, key: Any) -> None:
        rows.append((label, *(str(key(out[s])) for s in sides)))

    row("config", lambda s: s["config"])
    row("calls", lambda s: s["calls"])
    row("cost", lambda s: _usd(s["cost_usd"]))
    row("per request", lambda s: _usd(s["per_request_usd"]))
    row("per session", lambda s: _usd(s["per_session_usd"]))
    row("without optimisation", lambda s: _usd(s["counterfactual_usd"]))
    strategies = sorted({k for s in sides for k in out[s]["savings_usd"]})
    for strategy in strategies:
        row(f"saved: {strategy}", lambda s, k=strategy: _usd(s["savings_usd"].get(k, "0")))
    row("exact cache hit rate", lambda s: _pct(s["cache"]["exact_hit_rate"]))
    row("semantic cache hit rate", lambda s: _pct(s["cache"]["semantic_hit_rate"]))
    models = sorted({m for s in sides for m in out[s]["models"]})
    for model in models:
        row(f"model {model}", lambda s, m=model: _mix(s["models"].get(m)))
    row("routing decisions", lambda s: ", ".join(f"{k} {v}" for k, v in s["routes"].items()) or "-")
    row("output tokens", lambda s: ", ".join(f"{k} {v}" for k, v in s["output_tokens"].items()))
    if any("quality" in out[s] for s in sides):
        row("quality (mean correct)", lambda s: _quality(s.get("quality")))
    if "recorded_cost_usd" in out.get("candidate", {}):
        rows.append(("recorded cost", *(_usd(out[s].get("recorded_cost_usd")) for s in sides)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    if "change" in out:
        change = out["change"]
        percent = "n/a" if change["percent"] is None else f"{Decimal(change['percent']):+}%"
        lines.append(f"change: {_usd(change['cost_usd'], signed=True)} ({percent})")
    for note in out["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _usd(value: str | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    amount = Decimal(value)
    text = usd(amount)
    return f"+{text}" if signed and amount > 0 else text


def usd(amount: Decimal) -> str:
    """``$0.004625``, ``$1,234.50``: at least cents, at most 8 places (as the CLI prints money)."""
    text = format(amount.quantize(Decimal("1e-8")), "f")
    whole, _, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}${int(whole.lstrip('-')):,}.{frac.rstrip('0').ljust(2, '0')}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _mix(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "-"
    return f"{entry['calls']} ({entry['share'] * 100:.0f}%) {_usd(entry['cost_usd'])}"


def _quality(quality: Mapping[str, Any] | None) -> str:
    if not quality or quality["mean_correct"] is None:
        return "-"
    return f"{quality['mean_correct'] * 100:.1f}% of {quality['labelled_calls']}"


def render_html(out: Mapping[str, Any]) -> str:
    """A page of its own (no script, no outside resource): the text report's table, and the notes."""
    from html import escape

    text = render_text(out).splitlines()
    table_lines = [line for line in text if not line.startswith(("note: ", "change: "))]
    others = [line for line in text if line.startswith(("note: ", "change: "))]
    sides = [s for s in ("baseline", "candidate") if s in out]
    head = "".join(f"<th>{escape(s)}</th>" for s in sides)
    body_rows = _html_rows(table_lines[1:], len(sides))
    items = "".join(f"<li>{escape(line)}</li>" for line in others)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>thrifty replay</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        f"<h1>thrifty replay: {escape(str(out['traffic']['source']))}</h1>"
        f"<table><tr><th></th>{head}</tr>{body_rows}</table><ul>{items}</ul></body></html>\n"
    )


def _html_rows(lines: Sequence[str], columns: int) -> str:
    import re
    from html import escape

    rows = []
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        cells += [""] * (columns + 1 - len(cells))
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells[: columns + 1]) + "</tr>")
    return "".join(rows)
