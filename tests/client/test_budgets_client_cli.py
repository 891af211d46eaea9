"""Budgets, plans and rate limits through the in-process client (``thrifty.Thrifty(limits=...)``),
and the ``thrifty budgets`` commands and the budget section of ``thrifty report``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml
from click.testing import CliRunner

import thrifty
from thrifty.cli.main import cli
from thrifty.stores.ledger import open_ledger

HELLO = [{"role": "user", "content": "Say hello in-process."}]


def _client(tmp_path: Path, limits: dict[str, Any]) -> thrifty.Thrifty:
    return thrifty.Thrifty(
        ledger=f"sqlite:///{tmp_path / 'ledger.db'}", journal_dir=tmp_path / "journal", limits=limits
    )


def _settled(runtime: thrifty.Thrifty) -> None:
    limits = runtime.runtime.limits
    assert limits is not None
    runtime.runtime.submit(limits.engine.drain()).result(timeout=10)


def test_the_in_process_client_enforces_budgets_plans_and_rate_limits(simulator_url: str, tmp_path: Path) -> None:
    limits = {
        "budgets": {"limits": [{"scope": "user", "value": "alice", "usd": "0.000012", "window": "day"}]},
        "plans": {
            "tiers": {"free": {"max_tokens": 6, "models": ["gpt-4o-mini", "claude-haiku-4-5"]}},
            "default": "free",
        },
        "rate_limits": {"limits": [{"scope": "user", "value": "carol", "requests_per_minute": 1}], "max_wait_s": 0},
    }
    runtime = _client(tmp_path, limits)
    try:
        alice = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), user="alice")
        first = alice.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=200)  # type: ignore[arg-type]
        assert first.usage is not None and first.usage.completion_tokens <= 6  # the plan's cap
        _settled(runtime)
        alice.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=6)  # type: ignore[arg-type]
        _settled(runtime)
        with pytest.raises(openai.RateLimitError) as refused:
            alice.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=6)  # type: ignore[arg-type]
        assert "budget exceeded: user alice" in str(refused.value)
        with pytest.raises(openai.PermissionDeniedError):
            alice.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=6)  # type: ignore[arg-type]
        carol = runtime.wrap(anthropic.Anthropic(base_url=simulator_url, api_key="sk-test"), user="carol")
        carol.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=HELLO)  # type: ignore[arg-type]
        with pytest.raises(anthropic.RateLimitError) as limited:
            carol.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=HELLO)  # type: ignore[arg-type]
        assert "user carol may use 1 requests per minute" in str(limited.value)
    finally:
        runtime.close()


def test_a_model_without_a_price_is_refused_by_a_usd_budget(simulator_url: str, tmp_path: Path) -> None:
    limits = {"budgets": {"limits": [{"scope": "global", "usd": "10", "window": "day"}]}}
    runtime = _client(tmp_path, limits)
    try:
        client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="my-own-llm-7b", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        assert "no price is known for my-own-llm-7b" in str(refused.value)
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
    finally:
        runtime.close()
    allowed = _client(tmp_path / "allow", {"budgets": {"unpriced": "allow", **limits["budgets"]}})
    try:
        client = allowed.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
        client.chat.completions.create(model="my-own-llm-7b", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
    finally:
        allowed.close()


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_the_budgets_commands_set_show_and_delete(tmp_path: Path, simulator_url: str) -> None:
    store = f"sqlite:///{tmp_path / 'budgets.db'}"
    done = _cli("budgets", "set", "--user", "u1", "--usd", "5", "--window", "day", "--store", store)
    assert done.exit_code == 0, done.output
    assert "set user:u1:day:usd: $5.00 per day (UTC) for user u1" in done.output
    for args in (
        ("--team", "t1", "--tokens", "1000", "--window", "week"),
        ("--feature", "f1", "--usd", "0.5", "--window", "month", "--timezone", "America/New_York"),
        ("--key", "key_abc", "--tokens", "50", "--window", "rolling", "--seconds", "3600"),
        ("--tag", "batch", "--usd", "1"),
    ):
        assert _cli("budgets", "set", *args, "--store", store).exit_code == 0
    shown = _cli("budgets", "show", "--json", "--store", store)
    rows = {r["id"]: r for r in json.loads(shown.output)["budgets"]}
    assert set(rows) == {
        "user:u1:day:usd",
        "team:t1:week:tokens",
        "feature:f1:month@America/New_York:usd",
        "key:key_abc:rolling3600s:tokens",
        "tag:batch:day:usd",
    }
    assert rows["user:u1:day:usd"]["remaining"] == "5" and rows["user:u1:day:usd"]["spent"] == "0"
    table = _cli("budgets", "show", "--store", store).output
    assert "user:u1:day:usd" in table and "$5.00" in table
    assert _cli("budgets", "delete", "user:u1:day:usd", "--store", store).exit_code == 0
    missing = _cli("budgets", "delete", "user:u1:day:usd", "--store", store)
    assert missing.exit_code == 2 and "no budget" in missing.output
    both = _cli("budgets", "set", "--user", "x", "--usd", "1", "--tokens", "5", "--store", store)
    assert both.exit_code == 2 and "exactly one of --usd and --tokens" in both.output
    two = _cli("budgets", "set", "--user", "x", "--team", "y", "--usd", "1", "--store", store)
    assert two.exit_code == 2
    # A gateway config names the store, and the models a budget may downgrade to.
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"ledger": f"sqlite:///{tmp_path / 'ledger.db'}"},
                "providers": {"openai": {"kind": "openai", "base_url": f"{simulator_url}/v1"}},
                "models": [{"name": "gpt-4o-mini", "provider": "openai"}],
            }
        )
    )
    wrong = _cli("budgets", "set", "--global", "--usd", "1", "--downgrade-to", "nope", "--config", str(config))
    assert wrong.exit_code == 2 and "no model named 'nope'" in wrong.output
    right = _cli("budgets", "set", "--global", "--usd", "1", "--downgrade-to", "gpt-4o-mini", "--config", str(config))
    assert right.exit_code == 0 and str(tmp_path / "budgets.db") in right.output


def test_the_report_shows_budget_utilisation(simulator_url: str, tmp_path: Path) -> None:
    from tests.support.gateway import running_gateway

    limits = [{"scope": "team", "value": "ops", "tokens": 10_000, "window": "day"}]
    with running_gateway(
        simulator_url, tmp_path, budgets={"limits": limits}, cache={"exact": {"enabled": False}}
    ) as gw:
        client = openai.OpenAI(
            base_url=f"{gw.url}/v1", api_key="x", max_retries=0, default_headers={"x-thrifty-team": "ops"}
        )
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)  # type: ignore[arg-type]
        (record,) = gw.records(1)
        time.sleep(0.2)
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    text = _cli("report", "--ledger", ledger).output
    assert "budgets (current windows):" in text and "team:ops:day:tokens" in text
    data = json.loads(_cli("report", "--ledger", ledger, "--json").output)
    (row,) = data["budgets"]
    assert row["spent"] == record.usage.input_tokens + record.usage.output_tokens
    assert row["utilisation"] == round(row["spent"] / 10_000, 4)
    store = open_ledger(ledger)
    store.close()
