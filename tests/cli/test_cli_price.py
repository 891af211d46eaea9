"""``thrifty price``: exact totals from published rates, cache writes, long-context tiers, batch,
dated prices, JSON-lines usage files, price-override files, and bad input."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thrifty.cli.main import main

MTOK = Decimal(1_000_000)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines()]


Cli = Callable[..., Run]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("THRIFTY_PRICES", raising=False)

    def run(*args: str, stdin: str | None = None) -> Run:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8"))
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def usd(tokens: int, per_mtok: str) -> Decimal:
    """What ``tokens`` cost at a published rate in USD per million tokens."""
    return Decimal(tokens) * Decimal(per_mtok) / MTOK


def price_json(cli: Cli, model: str, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = cli("price", "-m", model, "--json", *args).json()
    parts = result["breakdown"]
    assert Decimal(result["total_usd"]) == sum(Decimal(parts[k]) for k in parts)
    assert "E" not in result["total_usd"].upper()  # a plain decimal string, never an exponent
    return result


def total(cli: Cli, model: str, *args: str) -> Decimal:
    return Decimal(price_json(cli, model, *args)["total_usd"])


def tokens(**counts: int) -> list[str]:
    return [arg for key, value in counts.items() for arg in (f"--{key.replace('_', '-')}", str(value))]


def assert_one_line_error(run: Run, *fragments: str) -> str:
    assert run.code == 2, (run.out, run.err)
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- catalogue prices


def test_gpt4o_with_cache_reads_is_exact(cli: Cli) -> None:
    # $2.50 input, $1.25 cached input, $10 output per million tokens.
    expected = usd(600_000, "2.50") + usd(400_000, "1.25") + usd(100_000, "10")
    args = tokens(input_tokens=1_000_000, cache_read_tokens=400_000, output_tokens=100_000)
    result = price_json(cli, "gpt-4o", *args, "--at", "2026-11-01")
    assert Decimal(result["total_usd"]) == expected
    assert result["provider"] == "openai"
    assert result["usage"]["cache_read_tokens"] == 400_000
    assert Decimal(result["breakdown"]["cache_read_usd"]) == usd(400_000, "1.25")


def test_table_output_shows_the_exact_total(cli: Cli) -> None:
    run = cli("price", "-m", "gpt-4o", *tokens(input_tokens=1_000, output_tokens=1_000), "--at", "2026-11-01")
    assert run.code == 0
    expected = usd(1_000, "2.50") + usd(1_000, "10")
    assert f"(exact: {expected.normalize():f})" in run.out


def test_anthropic_cache_writes_by_ttl(cli: Cli) -> None:
    # claude-sonnet-4-5: $3 input, $3.75 5-minute write, $6 1-hour write, $0.30 read, $15 output.
    counts = tokens(
        input_tokens=100_000,
        cache_read_tokens=30_000,
        cache_write_tokens=10_000,
        cache_write_1h_tokens=20_000,
        output_tokens=1_000,
    )
    expected = usd(40_000, "3") + usd(30_000, "0.30") + usd(10_000, "3.75") + usd(20_000, "6") + usd(1_000, "15")
    result = price_json(cli, "claude-sonnet-4-5", *counts, "--at", "2026-11-01")
    assert Decimal(result["total_usd"]) == expected
    assert Decimal(result["breakdown"]["cache_write_usd"]) == usd(10_000, "3.75") + usd(20_000, "6")


@pytest.mark.parametrize(
    ("input_tokens", "input_rate", "output_rate"),
    [(200_000, "3", "15"), (200_001, "6", "22.50"), (450_000, "6", "22.50")],
)
def test_long_context_tier_applies_to_every_token(
    cli: Cli, input_tokens: int, input_rate: str, output_rate: str
) -> None:
    args = tokens(input_tokens=input_tokens, output_tokens=10_000)
    expected = usd(input_tokens, input_rate) + usd(10_000, output_rate)
    assert total(cli, "claude-sonnet-4-5", *args, "--at", "2026-11-01") == expected


def test_batch_uses_the_catalogues_batch_rates_once_published(cli: Cli) -> None:
    args = tokens(input_tokens=1_000_000, output_tokens=1_000_000)
    result = price_json(cli, "gpt-4o", *args, "--batch", "--at", "2026-11-01")
    assert result["batch"] is True
    assert Decimal(result["total_usd"]) == usd(1_000_000, "1.25") + usd(1_000_000, "5")
    assert not any("50%" in note for note in result["notes"])


def test_batch_before_the_catalogue_has_a_batch_rate_is_half_price_with_a_note(cli: Cli) -> None:
    args = tokens(input_tokens=1_000_000, cache_read_tokens=400_000, output_tokens=100_000)
    result = price_json(cli, "gpt-4o", *args, "--batch", "--at", "2026-01-01")
    half = Decimal("0.5")
    expected = half * (usd(600_000, "2.50") + usd(400_000, "1.25") + usd(100_000, "10"))
    assert Decimal(result["total_usd"]) == expected
    assert any("50%" in note and "2026-01-01" in note for note in result["notes"])


def test_price_changes_on_its_date(cli: Cli) -> None:
    # genai-prices: o3 cost $10 / $40 until OpenAI cut it to $2 / $8 on 2025-06-10.
    args = tokens(input_tokens=1_000_000, output_tokens=1_000_000)
    before = total(cli, "o3", *args, "--at", "2025-06-09")
    after = total(cli, "o3", *args, "--at", "2025-06-10")
    assert before == usd(1_000_000, "10") + usd(1_000_000, "40")
    assert after == usd(1_000_000, "2") + usd(1_000_000, "8")
    assert total(cli, "o3", *args, "--at", "2025-06-09T23:59:59") == before
    # 00:00 at UTC+2 is still 2025-06-09 in UTC.
    assert total(cli, "o3", *args, "--at", "2025-06-10T00:00:00+02:00") == before


# ---------------------------------------------------------------- --usage-file


USAGE_LINES = [
    {"model": "gpt-4o", "input_tokens": 1_000_000, "cache_read_tokens": 400_000, "at": "2026-11-01"},
    {"model": "claude-sonnet-4-5", "input_tokens": 10_000, "cache_write_1h_tokens": 2_000, "at": "2026-11-01"},
    {"model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 10, "batch": True, "at": "2026-11-01"},
]


def test_usage_file_prints_one_object_per_line_in_order(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "u.jsonl", "\n".join(json.dumps(line) for line in USAGE_LINES) + "\n\n")
    run = cli("price", "--usage-file", path)
    assert run.code == 0, run.err
    results = run.lines()
    assert [r["model"] for r in results] == [line["model"] for line in USAGE_LINES]
    assert Decimal(results[0]["total_usd"]) == usd(600_000, "2.50") + usd(400_000, "1.25")
    assert Decimal(results[1]["total_usd"]) == usd(8_000, "3") + usd(2_000, "6")
    assert results[2]["batch"] is True
    assert Decimal(results[2]["total_usd"]) == usd(1_000_000, "1.25") + usd(10, "5")
    # Each line is priced exactly as the single-call command prices it.
    single = price_json(cli, "gpt-4o", *tokens(input_tokens=1_000_000, cache_read_tokens=400_000), "--at", "2026-11-01")
    assert results[0] == single


def test_usage_file_reports_bad_lines_in_place_and_exits_2(cli: Cli, tmp_path: Path) -> None:
    lines = [
        json.dumps(USAGE_LINES[0]),
        "",
        "not json",
        json.dumps({"model": "gpt-4o", "input_tokens": 5, "colour": "red"}),
        json.dumps({"model": "gpt-4o", "input_tokens": 10, "cache_read_tokens": 11}),
        json.dumps({"model": "gpt-4o", "input_tokens": -1}),
        json.dumps({"model": "gpt-4o", "input_tokens": 2.5}),
        json.dumps({"model": "no-such-model-xyz", "input_tokens": 5}),
        json.dumps({"model": "gpt-4o"}),
        json.dumps([1, 2]),
        json.dumps(USAGE_LINES[1]),
    ]
    run = cli("price", "--usage-file", write(tmp_path, "u.jsonl", "\n".join(lines) + "\n"))
    assert run.code == 2
    results = run.lines()
    assert len(results) == 10  # the blank line is skipped
    assert results[0]["model"] == "gpt-4o"
    assert results[-1]["model"] == "claude-sonnet-4-5"
    errors = results[1:-1]
    assert [e["line"] for e in errors] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert all(set(e) == {"line", "error"} for e in errors)
    assert "JSON" in errors[0]["error"]
    assert "colour" in errors[1]["error"]
    assert "exceed" in errors[2]["error"]
    assert "no-such-model-xyz" in errors[5]["error"]
    assert "input_tokens" in errors[6]["error"]
    assert_one_line_error(run, "8 line(s)", "line 3")


def test_usage_file_from_standard_input(cli: Cli) -> None:
    run = cli("price", "--usage-file", "-", stdin=json.dumps(USAGE_LINES[0]) + "\n")
    assert run.code == 0, run.err
    assert Decimal(run.lines()[0]["total_usd"]) == usd(600_000, "2.50") + usd(400_000, "1.25")


def test_usage_file_errors(cli: Cli, tmp_path: Path) -> None:
    assert_one_line_error(cli("price", "--usage-file", str(tmp_path / "none.jsonl")), "no such file")
    path = write(tmp_path, "u.jsonl", json.dumps(USAGE_LINES[0]))
    assert_one_line_error(cli("price", "--usage-file", path, "-m", "gpt-4o"), "--usage-file")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"model": "gpt-4o", "input_tokens": 1}\n\xff\n')
    assert_one_line_error(cli("price", "--usage-file", str(bad)), "UTF-8")


def test_usage_file_does_not_silently_ignore_at(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "u.jsonl", json.dumps({"model": "o3", "input_tokens": 1_000_000}) + "\n")
    run = cli("price", "--usage-file", path, "--at", "2025-06-01")
    if run.code == 0:
        assert Decimal(run.lines()[0]["total_usd"]) == usd(1_000_000, "10")
    else:
        assert_one_line_error(run, "--at")


# ---------------------------------------------------------------- --prices overrides

PRICES = """\
models:
  - model: acme-llm
    input_mtok: 0.40
    output_mtok: 1.60
    cache_read_mtok: 0.10
    note: our fine-tune
  - model: llama-selfhost
    self_hosted:
      usd_per_hour: 2.88
      input_tokens_per_second: 1600
      output_tokens_per_second: 40
  - model: gpt-4o
    starts: 2026-03-01
    input_mtok: 2.20
  - model: gpt-4o
    starts: 2026-06-01
    input_mtok: 2.00
    note: negotiated
"""


@pytest.fixture
def prices(tmp_path: Path) -> str:
    return write(tmp_path, "prices.yaml", PRICES)


def test_custom_model(cli: Cli, prices: str) -> None:
    args = tokens(input_tokens=1_000_000, cache_read_tokens=250_000, output_tokens=500_000)
    result = price_json(cli, "acme-llm", *args, "--prices", prices)
    assert Decimal(result["total_usd"]) == usd(750_000, "0.40") + usd(250_000, "0.10") + usd(500_000, "1.60")
    assert result["source"] == "override"
    assert "our fine-tune" in result["notes"]
    assert_one_line_error(cli("price", "-m", "acme-llm", *args), "acme-llm")  # unknown without the file


def test_self_hosted_model_is_priced_from_the_hourly_rate_and_throughput(cli: Cli, prices: str) -> None:
    result = price_json(cli, "llama-selfhost", *tokens(input_tokens=123_456, output_tokens=7_890), "--prices", prices)
    hourly, seconds = Decimal("2.88"), Decimal(3600)
    expected = hourly / seconds * (Decimal(123_456) / 1600 + Decimal(7_890) / 40)
    assert Decimal(result["total_usd"]) == expected
    assert result["source"] == "self-hosted"
    # $2.88 an hour is $0.0008 a second: 1,600 input tokens or 40 output tokens.
    assert Decimal(result["rates"]["input_per_mtok"]) == Decimal("0.5")
    assert Decimal(result["rates"]["output_per_mtok"]) == Decimal("20")


@pytest.mark.parametrize(
    ("day", "input_rate", "source"),
    [("2026-02-28", "2.50", "catalogue"), ("2026-03-01", "2.20", "override"), ("2026-06-01", "2.00", "override")],
)
def test_dated_corrections_of_a_catalogue_model(cli: Cli, prices: str, day: str, input_rate: str, source: str) -> None:
    args = tokens(input_tokens=1_000_000, cache_read_tokens=200_000, output_tokens=100_000)
    result = price_json(cli, "gpt-4o", *args, "--at", day, "--prices", prices)
    # Only the input rate is corrected; cached input and output keep the catalogue's rates.
    expected = usd(800_000, input_rate) + usd(200_000, "1.25") + usd(100_000, "10")
    assert Decimal(result["total_usd"]) == expected
    assert result["source"] == source


def test_prices_file_from_the_environment(cli: Cli, prices: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_PRICES", prices)
    assert total(cli, "acme-llm", *tokens(input_tokens=1_000_000)) == usd(1_000_000, "0.40")


def test_default_price_prices_an_unknown_model_with_a_note(cli: Cli, tmp_path: Path) -> None:
    args = tokens(input_tokens=1_000_000, output_tokens=1_000_000)
    line = assert_one_line_error(cli("price", "-m", "mystery-model", *args), "mystery-model")
    assert "unknown model" in line
    path = write(tmp_path, "p.yaml", "default_price:\n  input_mtok: 1.5\n  output_mtok: 4\n")
    result = price_json(cli, "mystery-model", *args, "--prices", path)
    assert Decimal(result["total_usd"]) == usd(1_000_000, "1.5") + usd(1_000_000, "4")
    assert result["source"] == "default"
    assert any("mystery-model" in note for note in result["notes"])


@pytest.mark.parametrize(
    ("name", "text", "fragments"),
    [
        ("neg.yaml", "models:\n  - model: a\n    input_mtok: -1\n    output_mtok: 2\n", ("models[0].input_mtok",)),
        (
            "typo.yaml",
            "models:\n  - model: a\n    input_mtok: 1\n    output_mtok: 1\n  - model: b\n    inptu_mtok: 1\n",
            ("models[1].inptu_mtok",),
        ),
        ("noprice.yaml", "models:\n  - model: a\n    note: x\n", ("models[0]", "no price")),
        ("broken.yaml", "models: [\n", ("invalid YAML", "line 2")),
        ("type.json", '{"models": [{"model": "a", "input_mtok": "x", "output_mtok": 1}]}', ("models[0].input_mtok",)),
        (
            "hosted.yaml",
            "models:\n  - model: a\n    self_hosted:\n      usd_per_hour: 1\n"
            "      input_tokens_per_second: 0\n      output_tokens_per_second: 1\n",
            ("models[0].self_hosted.input_tokens_per_second",),
        ),
        ("date.yaml", "models:\n  - model: a\n    starts: soon\n    input_mtok: 1\n    output_mtok: 1\n", ("starts",)),
        ("list.yaml", "- 1\n- 2\n", ("top level",)),
    ],
)
def test_invalid_price_file_names_the_file_and_the_field(
    cli: Cli, tmp_path: Path, name: str, text: str, fragments: tuple[str, ...]
) -> None:
    path = write(tmp_path, name, text)
    assert_one_line_error(cli("price", "-m", "gpt-4o", "--input-tokens", "1", "--prices", path), path, *fragments)


def test_missing_price_file(cli: Cli, tmp_path: Path) -> None:
    missing = str(tmp_path / "none.yaml")
    assert_one_line_error(cli("price", "-m", "gpt-4o", "--input-tokens", "1", "--prices", missing), missing)


def test_incomplete_override_of_an_unknown_model_is_explained(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "models:\n  - model: acme-x\n    input_mtok: 1\n")
    line = assert_one_line_error(cli("price", "-m", "acme-x", "--input-tokens", "1", "--prices", path))
    assert path in line or "output" in line


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["-m", "gpt-4o", "--input-tokens", "-5"], ("--input-tokens",)),
        (["-m", "gpt-4o", "--input-tokens", "1.5"], ("--input-tokens",)),
        (["-m", "gpt-4o", "--input-tokens", "abc"], ("--input-tokens",)),
        (["-m", "gpt-4o", "--input-tokens", "10", "--output-tokens", "-1"], ("--output-tokens",)),
        (["-m", "gpt-4o", "--input-tokens", "10", "--cache-read-tokens", "11"], ("exceed",)),
        (["-m", "gpt-4o", "--input-tokens", "10", "--cache-read-tokens", "6", "--cache-write-tokens", "5"], ("11",)),
        (["-m", "gpt-4o", "--input-tokens", "10", "--output-tokens", "5", "--reasoning-tokens", "6"], ("reasoning",)),
        (["-m", "gpt-4o", "--input-tokens", "10", "--at", "2026-13-01"], ("--at", "2026-13-01")),
        (["-m", "gpt-4o", "--input-tokens", "10", "--at", "yesterday"], ("--at",)),
        (["--input-tokens", "10"], ("--model",)),
        (["-m", "gpt-4o"], ("--input-tokens",)),
        (["-m", "gtp-4o", "--input-tokens", "10"], ("gtp-4o", "did you mean", "gpt-4o")),
    ],
)
def test_bad_input_is_one_line_and_status_2(cli: Cli, args: list[str], fragments: tuple[str, ...]) -> None:
    assert_one_line_error(cli("price", *args), *fragments)


def test_reasoning_tokens_are_part_of_the_output(cli: Cli) -> None:
    args = tokens(input_tokens=1_000, output_tokens=5_000, reasoning_tokens=4_000)
    assert total(cli, "o3", *args, "--at", "2025-07-01") == usd(1_000, "2") + usd(5_000, "8")
