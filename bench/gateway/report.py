"""The benchmark's report: figures per target, ratios against the baselines, the issue's targets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# --- report -----------------------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.{digits}f}"


def _achieved(x: dict[str, Any]) -> str:
    problems = f" ({x['errors']} err, {x['incomplete']} unanswered)" if x["errors"] or x["incomplete"] else ""
    return fmt(x["achieved"]) + problems


def _latencies(x: dict[str, Any]) -> str:
    mark = ">=" if x["incomplete"] else ""  # unanswered requests: their latency so far is a lower bound
    return " / ".join(mark + fmt(x[k]) for k in ("p50_ms", "p99_ms", "max_ms"))


def _soak(r: dict[str, Any], what: str) -> str:
    soak = r.get("soak", {})
    if "first_mb" not in soak:
        return str(soak.get("skipped", "-"))
    if what == "mb":
        return " / ".join(fmt(soak[k], 0) for k in ("first_mb", "last_mb", "max_mb"))
    return f"{soak['drift_pct']:+.1f} / {soak['max_growth_pct']:+.1f}"


def _others(r: dict[str, Any], rates: list[int]) -> str:
    values = [r["seq_others_cpu"], r["wrk"]["others_cpu"], *(r[f"rate{rate}"]["others_cpu"] for rate in rates)]
    return " / ".join(f"{v:.2f}" for v in values)


def report(results: dict[str, dict[str, Any]], direct: dict[str, Any], rates: list[int]) -> str:
    """The figures table, the ratios against the baselines, and thrifty against the issue's targets."""
    names = list(results)
    ok = [n for n in names if "error" not in results[n]]
    Get = Callable[[dict[str, Any]], str]
    spec: list[tuple[str, str, Get]] = [
        ("sequential p50 / p99 (ms)", "", lambda r: f"{fmt(r['seq_p50_ms'])} / {fmt(r['seq_p99_ms'])}"),
        ("  added p50 / p99 (ms)", "", lambda r: f"{fmt(r['seq_added_p50_ms'])} / {fmt(r['seq_added_p99_ms'])}"),
        (
            "  upstream direct, alternating (ms)",
            "",
            lambda r: f"{fmt(r['seq_direct_p50_ms'])} / {fmt(r['seq_direct_p99_ms'])}",
        ),
        (
            "max throughput, wrk (req/s)",
            fmt(direct["wrk"]["rps"]),
            lambda r: fmt(r["wrk"]["rps"]) + (f" ({r['wrk']['errors']:.0f} err)" if r["wrk"]["errors"] else ""),
        ),
        ("  each wrk run (req/s)", "", lambda r: " / ".join(fmt(v) for v in r["wrk"]["runs_rps"])),
    ]
    for rate in rates:
        key = f"rate{rate}"
        d = direct[key]
        spec += [
            (f"@{rate}/s achieved (req/s)", _achieved(d), lambda r, k=key: _achieved(r[k])),
            (f"@{rate}/s p50 / p99 / max (ms)", _latencies(d), lambda r, k=key: _latencies(r[k])),
            (f"@{rate}/s added p99 (ms)", "", lambda r, k=key: fmt(r[k]["added_p99_ms"])),
            (
                "  p99 of each run (ms)",
                " / ".join(fmt(v) for v in d["runs_p99_ms"]),
                lambda r, k=key: " / ".join(fmt(v) for v in r[k]["runs_p99_ms"]),
            ),
            ("  generator send lag p99 (ms)", fmt(d["send_lag_p99_ms"]), lambda r, k=key: fmt(r[k]["send_lag_p99_ms"])),
        ]
    spec.append(
        (
            "RSS idle / peak / after (MB)",
            "",
            lambda r: " / ".join(fmt(r[k], 0) for k in ("rss_idle_mb", "rss_peak_mb", "rss_after_mb")),
        )
    )
    if any("soak" in results[n] for n in ok):
        spec.append(("soak RSS first / last / max (MB)", "", lambda r: _soak(r, "mb")))
        spec.append(("soak RSS drift / max growth (%)", "", lambda r: _soak(r, "pct")))
    if any("ledger_rows" in results[n] for n in ok):
        spec.append(("ledger rows written", "", lambda r: str(r.get("ledger_rows", "-"))))
    phases = "/".join(["seq", "wrk", *(str(rate) for rate in rates)])
    spec.append((f"others' CPU, cores ({phases})", "", lambda r: _others(r, rates)))
    rows = [(label, [dv, *(get(results[n]) if n in ok else "FAILED" for n in names)]) for label, dv, get in spec]
    lines = [_table(["", "upstream direct", *names], rows)]

    bases = [b for b in ("passthrough", "litellm") if b in ok]
    if bases:
        # each metric: (value, 1 if it is a lower bound because requests were left unanswered)
        metrics: list[tuple[str, Callable[[dict[str, Any]], tuple[float, int]]]] = [
            ("max throughput", lambda r: (r["wrk"]["rps"], 0)),
            ("sequential added p50", lambda r: (r["seq_added_p50_ms"], 0)),
            ("sequential added p99", lambda r: (r["seq_added_p99_ms"], 0)),
            *[(f"@{rate}/s p99", lambda r, k=f"rate{rate}": (r[k]["p99_ms"], _bound(r[k]))) for rate in rates],
            ("RSS peak", lambda r: (r["rss_peak_mb"], 0)),
        ]
        ratio_rows = [
            (f"{label} vs {base}", [_ratio(get(results[n]), get(results[base])) for n in ok])
            for label, get in metrics
            for base in bases
        ]
        lines += ["", "Ratios (target / baseline, same run):", _table(["", *ok], ratio_rows)]
    if "thrifty" in ok:
        lines += ["", "thrifty against the issue's targets:", *_targets(results["thrifty"], rates)]
    return "\n".join(lines)


def _bound(rate_result: dict[str, Any]) -> int:
    return int(rate_result["incomplete"] > 0)


def _ratio(a: tuple[float, int], b: tuple[float, int]) -> str:
    """a/b; ">=" when a is a lower bound and b exact, "<=" the other way round, "~" when both are."""
    if b[0] <= 0 or a[0] < 0:
        return "-"
    r = a[0] / b[0]
    mark = {(1, 0): ">=", (0, 1): "<=", (1, 1): "~"}.get((a[1], b[1]), "")
    return f"{mark}1/{1 / r:,.0f}x" if r < 0.1 else f"{mark}{r:,.2f}x"


def _targets(r: dict[str, Any], rates: list[int]) -> list[str]:
    checks = [
        ("max throughput >= 1,500 req/s", r["wrk"]["rps"] >= 1500, fmt(r["wrk"]["rps"])),
        ("sequential added p50 <= 1 ms", r["seq_added_p50_ms"] <= 1.0, fmt(r["seq_added_p50_ms"])),
    ]
    if 500 in rates:
        x = r["rate500"]
        checks.append(
            (
                "@500/s added p99 <= 5 ms (all answered)",
                x["added_p99_ms"] <= 5 and not x["incomplete"] and x["achieved"] >= 0.95 * 500,
                fmt(x["added_p99_ms"]),
            )
        )
    peak = max(r["rss_peak_mb"], r.get("soak", {}).get("max_mb", 0))
    checks.append(("RSS <= 150 MB", peak <= 150, fmt(peak, 0)))
    soak = r.get("soak", {})
    if "drift_pct" in soak:
        checks.append(("soak RSS within 10%", abs(soak["max_growth_pct"]) <= 10, f"{soak['max_growth_pct']:+.1f}%"))
    return [f"  {'PASS' if good else 'FAIL'}  {label}: {value}" for label, good, value in checks]


def _table(header: list[str], rows: list[tuple[str, list[str]]]) -> str:
    body = [header, *[[label, *cells] for label, cells in rows]]
    widths = [max(len(r[i]) for r in body) for i in range(len(header))]
    out = []
    for i, r in enumerate(body):
        out.append(
            "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
