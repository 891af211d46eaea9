"""``thrifty estimate``, ``models``, ``report`` and ``demo``, and ``--help`` on every command."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thrifty.cli.main import main
from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing import PriceBook
from thrifty.core.pricing.rates import Cost
from thrifty.stores.ledger import LedgerWriter, open_ledger

MTOK = Decimal(1_000_000)
DEMO_MODELS = {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "claude-haiku-4-5"}


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


Cli = Callable[..., Run]


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return Run(code, out, err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("THRIFTY_PRICES", raising=False)
    monkeypatch.delenv("THRIFTY_LEDGER_URL", raising=False)

    def run(*args: str, stdin: str | None = None) -> Run:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8"))
        return invoke(capsys, *args)

    return run


def assert_error(run: Run, *fragments: str) -> str:
    """Exit status 2, no traceback, and the last stderr line (after any progress label) says why."""
    assert run.code == 2, (run.out, run.err)
    assert "Traceback" not in run.err
    line = run.err.splitlines()[-1]
    assert line.startswith("thrifty")
    for fragment in fragments:
        assert fragment in line
    return line


def usd(tokens: int, per_mtok: str) -> Decimal:
    return Decimal(tokens) * Decimal(per_mtok) / MTOK


# ---------------------------------------------------------------- --help


@pytest.mark.parametrize("command", ["count", "price", "estimate", "models", "report", "demo"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(cli: Cli, command: str, flag: str) -> None:
    run = cli(command, flag)
    assert run.code == 0
    assert run.out.startswith(f"Usage: thrifty {command}")
    assert run.err == ""


def test_top_level_help_lists_every_command(cli: Cli) -> None:
    run = cli("--help")
    assert run.code == 0
    for command in ("count", "price", "estimate", "models", "report", "demo"):
        assert f"  {command} " in run.out


# ---------------------------------------------------------------- estimate

WORKLOAD = ["--input-tokens", "800", "--output-tokens", "300", "--requests", "100000"]


def estimate_json(cli: Cli, *args: str, stdin: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = cli("estimate", "--json", *args, stdin=stdin).json()
    monthly = [Decimal(plan["monthly_usd"]) for plan in result["models"]]
    assert monthly == sorted(monthly)
    return result


def test_estimate_single_model(cli: Cli) -> None:
    result = estimate_json(cli, "--model", "gpt-4o", *WORKLOAD)
    # (800 x $2.50 + 300 x $10) per million tokens, 100,000 times.
    assert Decimal(result["monthly_usd"]) == (usd(800, "2.50") + usd(300, "10")) * 100_000
    assert result["monthly_usd"] == "500"
    assert result["models"][0]["approximate"] is False


def test_estimate_sorts_models_cheapest_first(cli: Cli) -> None:
    result = estimate_json(cli, "-m", "claude-sonnet-4-5", "-m", "gpt-4o", "-m", "gpt-4o-mini", *WORKLOAD)
    plans = result["models"]
    assert [p["model"] for p in plans] == ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5"]
    monthly = [Decimal(p["monthly_usd"]) for p in plans]
    assert monthly == [
        (usd(800, "0.15") + usd(300, "0.60")) * 100_000,
        (usd(800, "2.50") + usd(300, "10")) * 100_000,
        (usd(800, "3") + usd(300, "15")) * 100_000,
    ]
    table = cli("estimate", "-m", "claude-sonnet-4-5", "-m", "gpt-4o", "-m", "gpt-4o-mini", *WORKLOAD)
    rows = [line.split()[0] for line in table.out.splitlines()[2:5]]
    assert rows == ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5"]


def test_estimate_cached_share(cli: Cli) -> None:
    result = estimate_json(cli, "-m", "gpt-4o", *WORKLOAD, "--cached-share", "0.5")
    expected = (usd(400, "2.50") + usd(400, "1.25") + usd(300, "10")) * 100_000
    assert Decimal(result["monthly_usd"]) == expected
    assert Decimal(result["models"][0]["cached_tokens_per_request"]) == 400


SAMPLE = [
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Summarise the plot of Hamlet."}],
    {"messages": [{"role": "user", "content": "What's the weather in Oslo?"}], "tools": []},
    {"system": "Be kind.", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]},
]


def counted(cli: Cli, tmp_path: Path, model: str, document: object) -> dict[str, Any]:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result: dict[str, Any] = cli("count", "-m", model, "--json", str(path)).json()
    return result


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "claude-sonnet-4-5"])
def test_estimate_sample_counts_each_request_with_each_models_tokenizer(cli: Cli, tmp_path: Path, model: str) -> None:
    counts = [counted(cli, tmp_path, model, doc)["input_tokens"] for doc in SAMPLE]
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(json.dumps(doc) for doc in SAMPLE) + "\n", encoding="utf-8")
    result = estimate_json(cli, "-m", model, "--sample", str(sample), "--output-tokens", "0", "--requests", "3")
    plan = result["models"][0]
    assert Decimal(plan["input_tokens_per_request"]) == Decimal(sum(counts)) / 3
    assert plan["approximate"] is model.startswith("claude")


def test_estimate_sample_differs_by_tokenizer_and_reads_stdin(cli: Cli) -> None:
    lines = "\n".join(json.dumps(doc) for doc in SAMPLE)
    result = estimate_json(cli, "-m", "gpt-4o", "-m", "gpt-4", "--sample", "-", *WORKLOAD[2:], stdin=lines)
    per_model = {p["model"]: Decimal(p["input_tokens_per_request"]) for p in result["models"]}
    assert set(per_model) == {"gpt-4o", "gpt-4"}
    assert all(tokens > 0 for tokens in per_model.values())


def test_estimate_sample_monthly_cost_is_exact(cli: Cli, tmp_path: Path) -> None:
    docs = [[{"role": "user", "content": text}] for text in ("a", "a b", "a b c d e")]
    counts = [counted(cli, tmp_path, "gpt-4o", doc)["input_tokens"] for doc in docs]
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(json.dumps(doc) for doc in docs), encoding="utf-8")
    result = estimate_json(cli, "-m", "gpt-4o", "--sample", str(sample), "--output-tokens", "0", "--requests", "3")
    assert Decimal(result["monthly_usd"]) == usd(sum(counts), "2.50")  # 3 requests a month = the 3 sampled


def test_estimate_sample_error_names_the_file_line(cli: Cli) -> None:
    lines = json.dumps(SAMPLE[0]) + "\n\n" + json.dumps([{"role": "robot", "content": "x"}]) + "\n"
    run = cli("estimate", "-m", "gpt-4o", "--sample", "-", *WORKLOAD[2:], stdin=lines)
    assert_error(run, "line 3", "messages[0].role")


@pytest.mark.parametrize(
    ("args", "stdin", "fragments"),
    [
        (["--cached-share", "1.5", *WORKLOAD], None, ("--cached-share", "1.5")),
        (["--cached-share", "-0.1", *WORKLOAD], None, ("--cached-share",)),
        (["--cached-share", "half", *WORKLOAD], None, ("--cached-share", "half")),
        (["--cached-share", "nan", *WORKLOAD], None, ("--cached-share",)),
        (WORKLOAD[2:], None, ("--input-tokens", "--sample")),
        (["--sample", "-", *WORKLOAD], "[]", ("--input-tokens", "--sample")),
        (["--sample", "-", *WORKLOAD[2:]], "{bad\n", ("line 1", "JSON")),
        (["--sample", "-", *WORKLOAD[2:]], "\n\n", ("no requests",)),
        (["--sample", "-", *WORKLOAD[2:]], '[{"role": "robot", "content": "x"}]\n', ("messages[0].role",)),
        (["--sample", "/nonexistent/sample.jsonl", *WORKLOAD[2:]], None, ("no such file",)),
        (["--input-tokens", "-1", *WORKLOAD[2:]], None, ("--input-tokens",)),
        (["-m", "gtp-4o", *WORKLOAD], None, ("'gtp-4o'", "did you mean", "gpt-4o")),
    ],
)
def test_estimate_bad_input(cli: Cli, args: list[str], stdin: str | None, fragments: tuple[str, ...]) -> None:
    assert_error(cli("estimate", "-m", "gpt-4o", *args, stdin=stdin), *fragments)


# ---------------------------------------------------------------- models


def models_json(cli: Cli, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = cli("models", "--json", *args).json()
    assert isinstance(rows, list)
    return rows


def find(rows: list[dict[str, Any]], provider: str | None, model: str) -> dict[str, Any]:
    matches = [r for r in rows if r["provider"] == provider and r["model"] == model]
    assert len(matches) == 1, matches
    return matches[0]


def test_models_filter_returns_matching_models_with_prices(cli: Cli) -> None:
    rows = models_json(cli, "gpt-4o-mini")
    assert rows
    assert all("gpt-4o-mini" in r["model"].lower() or "gpt-4o-mini" in (r["name"] or "").lower() for r in rows)
    mini = find(rows, "openai", "gpt-4o-mini")
    assert (mini["input_per_mtok"], mini["cache_read_per_mtok"], mini["output_per_mtok"]) == ("0.15", "0.075", "0.6")
    for row in rows:
        for key in ("input_per_mtok", "cache_read_per_mtok", "output_per_mtok"):
            assert Decimal(row[key]) >= 0
    table = cli("models", "gpt-4o-mini")
    assert table.code == 0
    assert len(table.out.splitlines()) == len(rows) + 1  # a header, then one line per model


def test_models_by_provider(cli: Cli) -> None:
    rows = models_json(cli, "-p", "anthropic", "sonnet-4-5")
    assert {r["provider"] for r in rows} == {"anthropic"}
    sonnet = find(rows, "anthropic", "claude-sonnet-4-5")
    assert (sonnet["input_per_mtok"], sonnet["output_per_mtok"]) == ("3", "15")
    assert sonnet["cache_write_1h_per_mtok"] == "6"


def test_models_unknown_provider_and_no_match(cli: Cli) -> None:
    line = assert_error(cli("models", "-p", "no-such-provider"), "'no-such-provider'")
    assert "openai" in line
    assert models_json(cli, "zzz-no-such-model-zzz") == []
    assert_error(cli("models", "zzz-no-such-model-zzz"), "zzz-no-such-model-zzz")


def test_models_at_a_date(cli: Cli) -> None:
    assert find(models_json(cli, "o3", "--at", "2025-06-01"), "openai", "o3")["input_per_mtok"] == "10"
    assert find(models_json(cli, "o3", "--at", "2025-07-01"), "openai", "o3")["input_per_mtok"] == "2"
    assert_error(cli("models", "--at", "someday"), "--at")


def test_models_lists_overrides(cli: Cli, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "models:\n  - model: acme-llm\n    input_mtok: 0.4\n    output_mtok: 1.6\n"
        "  - model: acme-hosted\n    self_hosted: {usd_per_hour: 3.6, input_tokens_per_second: 2000,"
        " output_tokens_per_second: 500}\n",
        encoding="utf-8",
    )
    rows = models_json(cli, "acme", "--prices", str(prices))
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {"acme-llm", "acme-hosted"}
    assert by_model["acme-llm"]["source"] == "override"
    assert by_model["acme-hosted"]["source"] == "self-hosted"
    assert (by_model["acme-hosted"]["input_per_mtok"], by_model["acme-hosted"]["output_per_mtok"]) == ("0.5", "2")


def test_models_with_a_not_yet_effective_custom_model(cli: Cli, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "models:\n  - model: acme-next\n    starts: 2027-01-01\n    input_mtok: 1\n    output_mtok: 2\n",
        encoding="utf-8",
    )
    run = cli("models", "acme", "--at", "2026-11-01", "--json", "--prices", str(prices))
    assert run.code in (0, 2), run.err


def test_models_does_not_duplicate_a_model_whose_override_is_not_in_force(cli: Cli, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  - model: gpt-4o\n    starts: 2026-06-01\n    input_mtok: 2\n", encoding="utf-8")
    before = models_json(cli, "gpt-4o", "--at", "2026-01-01", "--prices", str(prices))
    find(before, "openai", "gpt-4o")


# ---------------------------------------------------------------- demo and report


@pytest.fixture(scope="module")
def demo_ledger(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'demo.db'}"
    assert main(["demo", "--calls", "200", "--ledger", url]) == 0
    return url


def ledger_records(url: str) -> list[LedgerRecord]:
    store = open_ledger(url)
    try:
        return sorted(store.records(limit=10_000), key=lambda r: r.ts)
    finally:
        store.close()


def report_json(cli: Cli, url: str, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = cli("report", "--ledger", url, "--json", *args).json()
    return result


def cost_of(records: list[LedgerRecord]) -> Decimal:
    return sum((r.cost.total for r in records if r.cost is not None), start=Decimal(0))


def test_report_totals_are_the_exact_sum_of_the_parts(cli: Cli, demo_ledger: str) -> None:
    result = report_json(cli, demo_ledger, "--by", "model,feature,user,provider,day")
    total = Decimal(result["totals"]["cost_usd"])
    assert result["totals"]["calls"] == 200
    for group, rows in result["by"].items():
        assert sum((Decimal(r["cost_usd"]) for r in rows), start=Decimal(0)) == total, group
        assert sum(r["calls"] for r in rows) == 200, group
    assert {r["key"] for r in result["by"]["model"]} <= DEMO_MODELS
    # Independently: reprice every recorded call from its usage at its time.
    records = ledger_records(demo_ledger)
    assert len(records) == 200
    book = PriceBook()
    assert total == sum((book.price(r.usage, r.requested_model, at=r.ts).cost.total for r in records), Decimal(0))
    assert total == cost_of(records)


def test_report_table(cli: Cli, demo_ledger: str) -> None:
    run = cli("report", "--ledger", demo_ledger, "--by", "model")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].startswith("200 calls, $")
    start = lines.index("by model:")
    assert {line.split()[0] for line in lines[start + 2 :]} == {r.requested_model for r in ledger_records(demo_ledger)}


def test_report_since_and_until(cli: Cli, demo_ledger: str) -> None:
    records = ledger_records(demo_ledger)
    since, until = records[50].ts, records[150].ts
    window = report_json(cli, demo_ledger, "--since", since.isoformat(), "--until", until.isoformat())
    assert window["totals"]["calls"] == 100  # since is inclusive, until exclusive
    assert Decimal(window["totals"]["cost_usd"]) == cost_of(records[50:150])
    assert window["totals"]["input_tokens"] == sum(r.usage.input_tokens for r in records[50:150])
    last_day = records[-1].ts.date()
    day = report_json(cli, demo_ledger, "--since", last_day.isoformat())
    assert day["totals"]["calls"] == sum(1 for r in records if r.ts.date() >= last_day)
    assert datetime.fromisoformat(day["since"]).date() == last_day
    assert report_json(cli, demo_ledger, "--since", "2099-01-01")["totals"]["calls"] == 0


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--by", "model,colour"], ("--by", "colour", "feature")),
        (["--by", " , "], ("--by",)),
        (["--since", "2026-02-30"], ("--since",)),
        (["--since", "2026-06-02", "--until", "2026-06-01"], ("--since", "--until")),
        (["--since", "2026-06-01", "--until", "2026-06-01"], ("--since", "--until")),
    ],
)
def test_report_bad_options(cli: Cli, demo_ledger: str, args: list[str], fragments: tuple[str, ...]) -> None:
    assert_error(cli("report", "--ledger", demo_ledger, *args), *fragments)


def test_report_without_a_ledger(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "none.db"
    assert_error(cli("report", "--ledger", f"sqlite:///{missing}"), "no ledger", str(missing))
    assert not missing.exists()  # reporting must not create an empty ledger
    monkeypatch.chdir(tmp_path)
    assert_error(cli("report"), "no ledger", "thrifty.db")
    assert_error(cli("report", "--ledger", "mysql://db/x"), "mysql://db/x")


def test_demo_data_stays_out_of_the_real_ledger(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated spend never lands in the ledger of real calls: not the embedded default, not
    THRIFTY_LEDGER_URL's (issue 14.9: thrifty demo --calls 300 added $1.73 of fake spend there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_HOME", raising=False)
    real = tmp_path / "env.db"
    monkeypatch.setenv("THRIFTY_LEDGER_URL", f"sqlite:///{real}")
    run = cli("demo", "--calls", "40", "--seed", "3")
    assert run.code == 0, run.err
    demo_store = tmp_path / ".thrifty" / "demo.db"
    assert "into sqlite:///.thrifty/demo.db" in run.out and "(from --demo)" in run.err
    assert not real.exists() and not (tmp_path / ".thrifty" / "thrifty.db").exists()
    assert_error(cli("report"), "no ledger", str(real))
    result = cli("report", "--demo", "--json").json()
    assert result["totals"]["calls"] == 40
    assert result["totals"] == report_json(cli, f"sqlite:///{demo_store}")["totals"]
    printed = run.out.split("costing $", 1)[1].split()[0].replace(",", "")
    assert Decimal(printed) == Decimal(result["totals"]["cost_usd"]).quantize(Decimal("1e-8"))
    assert not (tmp_path / ".thrifty" / "journal").exists()  # nor the real ledger's journal
    assert_error(cli("report", "--demo", "--ledger", f"sqlite:///{real}"), "--demo")


def test_demo_default_store_is_under_the_working_directory(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_HOME", raising=False)
    monkeypatch.delenv("THRIFTY_LEDGER_URL", raising=False)
    assert cli("demo", "--calls", "5").code == 0
    assert (tmp_path / ".thrifty" / "demo.db").is_file()
    assert not (tmp_path / ".thrifty" / "thrifty.db").exists()
    assert cli("report", "--demo", "--json").json()["totals"]["calls"] == 5
    assert_error(cli("report"), "no ledger", "thrifty.db")


def test_demo_rejects_bad_options(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert_error(cli("demo", "--calls", "0", "--ledger", url), "--calls")
    assert_error(cli("demo", "--ledger", "mysql://db/x"), "mysql://db/x")


def test_the_cache_share_counts_only_calls_the_cache_decided_on(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = open_ledger(url)
    now = datetime.now().astimezone()
    statuses = ["hit", "miss", "internal", "internal", "internal", None]  # a classifier, embeddings, ...
    store.insert_rows(
        [
            LedgerRecord(requested_model="gpt-4o-mini", ts=now, request_id=f"r{i}", cache_status=status).to_values()
            for i, status in enumerate(statuses)
        ]
    )
    store.close()
    run = cli("report", "--ledger", url)
    assert run.code == 0, run.err
    assert "cache: 50.0% answered from the cache (1 hit, 1 miss)" in run.out


def test_report_shows_lower_bound_rows_apart(cli: Cli, tmp_path: Path) -> None:
    """Calls in flight at a crash (interrupted) and attempts the provider may have billed without
    answering (timeout, incomplete) are in the total at their lower bound, and said to be."""
    url = f"sqlite:///{tmp_path / 'partial.db'}"
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    rows = [("ok", "0.002")] * 3 + [("interrupted", "0.0004")] * 2 + [("timeout", "0.0001"), ("incomplete", "0.0003")]
    store = open_ledger(url)
    writer = LedgerWriter(store, journal_dir=None)
    writer.start()
    writer.submit_many(
        [
            LedgerRecord(requested_model="gpt-4o", ts=at, status=status, cost=Cost(uncached_input=Decimal(cost)))
            for status, cost in rows
        ]
    )
    writer.close()
    store.close()
    result = report_json(cli, url)
    assert result["totals"]["calls"] == 7 and Decimal(result["totals"]["cost_usd"]) == Decimal("0.0072")
    assert result["lower_bounds"] == {
        "calls": 4,
        "cost_usd": "0.0012",
        "by_status": {
            "interrupted": {"calls": 2, "cost_usd": "0.0008"},
            "timeout": {"calls": 1, "cost_usd": "0.0001"},
            "incomplete": {"calls": 1, "cost_usd": "0.0003"},
        },
    }
    run = cli("report", "--ledger", url, "--by", "model")
    assert run.code == 0, run.err
    (line,) = [line for line in run.out.splitlines() if "lower bounds" in line]
    assert "2 interrupted" in line and "1 timed out" in line and "1 cut short" in line
    assert "at least $0.0012" in line
    ok_only = report_json(cli, url, "--until", "2026-12-01T11:00:00")
    assert ok_only["lower_bounds"]["calls"] == 0
