"""One CLI (issue 14, items 4 and 13): ``--json`` on every command that prints a result, an option
followed by another option is told it needs a value, bad values are refused on one line naming the
option, read-only ``budgets show`` creates nothing and says which store it used, a busy port is
one line, and ``price`` reads the providers' own usage fields and says when a date is older than
any rate the catalogue has."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thrifty.cli.main import main


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)

    def error(self, *fragments: str) -> str:
        """Exit 2 and one ``thrifty...: error: ...`` line naming every fragment."""
        assert self.code == 2, (self.out, self.err)
        assert "Traceback" not in self.err
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("thrifty") and ": error: " in lines[0], lines[0]
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
        return lines[0]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.chdir(tmp_path)
    for name in ("THRIFTY_PRICES", "THRIFTY_CONFIG", "THRIFTY_LEDGER_URL", "THRIFTY_BUDGETS_URL"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


# --- item 4: budgets show never creates a store, and says which it used ---------------------


def test_budgets_show_on_a_missing_store_says_so_and_creates_nothing(cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "none" / "budgets.db"
    line = cli("budgets", "show", "--store", f"sqlite:///{missing}").error("no budget store", str(missing))
    assert "--store" in line
    assert not missing.exists() and not missing.parent.exists()
    # The embedded default (beside the default ledger): nothing made in the working directory either.
    cli("budgets", "show", "--json").error("no budget store", "budgets.db")
    assert not (tmp_path / ".thrifty").exists()
    cli("budgets", "delete", "user:x:day:usd", "--store", f"sqlite:///{missing}").error("no budget store")
    assert not missing.exists()


def test_budgets_show_says_which_store_it_used(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = f"sqlite:///{tmp_path / 'b.db'}"
    assert cli("budgets", "set", "--user", "u1", "--usd", "5", "--store", store).code == 0
    shown = cli("budgets", "show", "--store", store)
    assert shown.code == 0 and "user:u1:day:usd" in shown.out
    assert f"thrifty: using {store} (from --store)" in shown.err
    monkeypatch.setenv("THRIFTY_BUDGETS_URL", store)
    assert "(from THRIFTY_BUDGETS_URL)" in cli("budgets", "show").err
    quiet = cli("budgets", "show", "--json")
    assert quiet.err == "" and [b["id"] for b in quiet.json()["budgets"]] == ["user:u1:day:usd"]


# --- item 13: --json everywhere --------------------------------------------------------------


def test_keys_revoke_budgets_delete_and_demo_take_json(cli: Any, tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    key = cli("keys", "create", "--user", "u", "--ledger", ledger, "--json").json()["id"]
    assert cli("keys", "revoke", key, "--ledger", ledger, "--json").json() == {"revoked": key}
    store = f"sqlite:///{tmp_path / 'b.db'}"
    assert cli("budgets", "set", "--team", "t", "--usd", "1", "--store", store).code == 0
    deleted = cli("budgets", "delete", "team:t:day:usd", "--store", store, "--json").json()
    assert deleted == {"deleted": "team:t:day:usd", "store": store}
    demo = cli("demo", "--ledger", f"sqlite:///{tmp_path / 'demo.db'}", "--calls", "20", "--json").json()
    assert demo["recorded"] == 20 and demo["report"]["totals"]["calls"] == 20
    assert Decimal(demo["cost_usd"]) == Decimal(demo["report"]["totals"]["cost_usd"])


def test_every_command_that_prints_a_result_takes_json() -> None:
    import click

    from thrifty.cli.main import cli as root

    def leaves(group: click.Group, path: str) -> list[tuple[str, click.Command]]:
        found = []
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += leaves(command, f"{path} {name}")
            else:
                found.append((f"{path} {name}", command))
        return found

    servers = {"thrifty serve", "thrifty simulate"}  # they run until stopped and print no result
    lacking = [
        name
        for name, command in leaves(root, "thrifty")
        if name not in servers and not any("--json" in p.opts for p in command.params)
    ]
    assert lacking == []


# --- item 13: an option taken as another's value; bad values in one line ---------------------


@pytest.mark.parametrize(
    "args",
    [
        ["budgets", "set", "--user", "--usd", "5"],
        ["budgets", "set", "--team", "--global", "--usd", "5"],
        ["keys", "create", "--user", "--team", "t"],
    ],
)
def test_an_option_followed_by_another_option_needs_a_value(cli: Any, tmp_path: Path, args: list[str]) -> None:
    cli(*args, "--store" if args[0] == "budgets" else "--ledger", f"sqlite:///{tmp_path / 'x.db'}").error(
        f"{args[2]} needs a value", args[3]
    )
    assert not (tmp_path / "x.db").exists()


def test_counts_take_suffixes_and_garbage_is_one_line(cli: Any) -> None:
    base = ["estimate", "-m", "gpt-4o", "--input-tokens", "1k", "--output-tokens", "0.5k", "--json"]
    plan = cli(*base, "--requests", "100k").json()
    assert plan["requests_per_month"] == 100_000
    assert plan["models"][0]["input_tokens_per_request"] == "1000"
    assert plan["models"][0]["output_tokens_per_request"] == 500
    assert cli(*base, "--requests", "1M").json()["requests_per_month"] == 1_000_000
    assert cli(*base, "--requests", "2.5k").json()["requests_per_month"] == 2_500
    assert cli(*base, "--requests", "100_000").json()["requests_per_month"] == 100_000
    for garbage in ("100q", "lots", "1.5", "2.5555k", "k"):
        cli(*base, "--requests", garbage).error("--requests", repr(garbage))
    cli(*base, "--requests", "-3").error("--requests", ">= 0")
    priced = cli("price", "-m", "gpt-4o", "--input-tokens", "2M", "--json").json()
    assert priced["usage"]["input_tokens"] == 2_000_000
    cli("price", "-m", "gpt-4o", "--input-tokens", "x1").error("--input-tokens", "'x1'")


def test_cache_clear_refuses_a_namespace_the_gateway_never_makes(cli: Any, tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    for garbage in ("garbage", "team:", "teams:red", "user"):
        line = cli("cache", "clear", "--namespace", garbage, "--ledger", ledger).error("--namespace", repr(garbage))
        for valid in ("team:NAME", "key:ID", "team:NAME/user:U", "user:NAME", "shared", "anonymous"):
            assert valid in line
    assert not (tmp_path / "l.db").exists()


def test_simulate_on_a_busy_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "thrifty.cli.main", "simulate", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"thrifty: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


# --- item 13: price --at older than the catalogue; the providers' own usage fields ------------


def test_price_at_a_date_older_than_the_catalogue_says_so(cli: Any) -> None:
    old = cli("price", "-m", "gpt-4o", "--input-tokens", "10", "--at", "2020-01-01", "--json").json()
    (note,) = [n for n in old["notes"] if "no rate" in n]
    assert "2020-01-01" in note and "2024-08-06" in note and "gpt-4o-2024-08-06" in note
    text = cli("price", "-m", "gpt-4o", "--input-tokens", "10", "--at", "2020-01-01")
    assert text.code == 0 and "no rate for gpt-4o as old as 2020-01-01" in text.out
    recent = cli("price", "-m", "gpt-4o", "--input-tokens", "10", "--at", "2025-01-01", "--json").json()
    assert not any("no rate" in n for n in recent["notes"])
    assert not any(
        "no rate" in n for n in cli("price", "-m", "gpt-4o", "--input-tokens", "10", "--json").json()["notes"]
    )


def _usage_file(tmp_path: Path, *lines: dict[str, Any]) -> str:
    path = tmp_path / "usage.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def test_price_usage_file_reads_openai_and_anthropic_usage_fields(cli: Any, tmp_path: Path) -> None:
    openai_line = {
        "model": "o3",
        "prompt_tokens": 1_000,
        "completion_tokens": 500,
        "total_tokens": 1_500,
        "prompt_tokens_details": {"cached_tokens": 400},
        "completion_tokens_details": {"reasoning_tokens": 300},
        "at": "2025-07-01",
    }
    anthropic_line = {
        "model": "claude-sonnet-4-5",
        "input_tokens": 100,
        "output_tokens": 10,
        "cache_read_input_tokens": 1_000,
        "cache_creation_input_tokens": 200,
    }
    nested = {"model": "claude-sonnet-4-5", "usage": {k: v for k, v in anthropic_line.items() if k != "model"}}
    run = cli("price", "--usage-file", _usage_file(tmp_path, openai_line, anthropic_line, nested))
    assert run.code == 0, run.err
    o3, claude, claude_nested = (json.loads(line) for line in run.out.splitlines())
    assert o3["usage"] | {"cache_write_tokens": 0} == {
        "input_tokens": 1_000,
        "cache_read_tokens": 400,
        "cache_write_tokens": 0,
        "cache_write_5m_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 500,
        "reasoning_tokens": 300,
    }
    # o3 on 2025-07-01: $2 input, $0.5 cached input, $8 output (reasoning included) per million.
    expected = (600 * Decimal(2) + 400 * Decimal("0.5") + 500 * Decimal(8)) / 1_000_000
    assert Decimal(o3["total_usd"]) == expected
    # Anthropic's input_tokens is the uncached part: the total input is 100 + 1,000 + 200.
    assert claude["usage"]["input_tokens"] == 1_300 and claude["usage"]["cache_read_tokens"] == 1_000
    assert claude["usage"]["cache_write_5m_tokens"] == 200
    assert claude_nested["total_usd"] == claude["total_usd"]


def test_price_usage_file_without_usage_fields_names_the_expected_ones(cli: Any, tmp_path: Path) -> None:
    run = cli("price", "--usage-file", _usage_file(tmp_path, {"model": "gpt-4o", "tokens": 5}))
    line = run.error("could not be priced", "no usage fields")
    for field in ("input_tokens", "prompt_tokens", "completion_tokens", "cache_read_input_tokens"):
        assert field in line
    assert "no usage fields" in json.loads(run.out)["error"]
    mixed = cli("price", "--usage-file", _usage_file(tmp_path, {"model": "gpt-4o", "prompt_tokens": 5, "foo": 1}))
    mixed.error("unknown field(s) foo")
