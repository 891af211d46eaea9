"""``thrifty replay``: traffic through a candidate config's own pipeline, offline, side by side
with a baseline; what-ifs; the exact cache's TTL on the traffic's own clock; bad lines and bad
configs reported, never a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thrifty.cli.main import main

CURRENT = """
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key_env: THRIFTY_TEST_UNSET_KEY}
models:
  - {name: gpt-4o, provider: openai}
  - {name: gpt-4o-mini, provider: openai}
cache:
  exact: {enabled: false}
"""

CACHED = CURRENT.replace("exact: {enabled: false}", "exact: {enabled: true, ttl_s: 3600}")

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _capture(minute: float, question: str, *, model: str = "gpt-4o", output: int = 50) -> dict[str, Any]:
    """A capture line as ``thrifty capture export`` writes it, recorded on ``model``."""
    return {
        "capture": 1,
        "id": None,
        "ts": (START + timedelta(minutes=minute)).isoformat(),
        "api": "openai",
        "body": {"model": model, "temperature": 0, "messages": [{"role": "user", "content": question}]},
        "attribution": {"user": "u1", "team": None, "feature": "faq", "key_id": None, "tags": []},
        "outcome": {
            "status": "ok",
            "http_status": 200,
            "served_model": model,
            "upstream_model": model,
            "provider": "openai",
            "usage": {"input_tokens": 20, "output_tokens": output},
            "cost": None,
            "cache_status": "miss",
            "route": None,
            "sent": None,
        },
    }


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "current.yaml").write_text(CURRENT)
    (tmp_path / "cached.yaml").write_text(CACHED)
    lines = [
        _capture(0, "What are your opening hours?"),
        _capture(10, "What are your opening hours?"),  # 10 minutes later: within the TTL
        _capture(200, "What are your opening hours?"),  # past the hour since it was stored
        _capture(201, "Where is the shop?"),
    ]
    (tmp_path / "traffic.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return tmp_path


def _replay(home: Path, *args: str) -> int:
    return main(["replay", "--traffic", str(home / "traffic.jsonl"), *args])


def test_side_by_side_with_cache_hits_on_the_traffics_own_clock(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _replay(home, "--config", str(home / "cached.yaml"), "--baseline", str(home / "current.yaml"), "--json")
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    statuses = [call["cache_status"] for call in out["calls"]["candidate"]]
    assert statuses == ["miss", "hit", "miss", "miss"]  # the third came after the entry's hour
    assert out["baseline"]["cache"]["exact_hit_rate"] == 0.0  # no cache step: every call sent
    candidate = out["candidate"]
    assert candidate["cache"]["exact_hit_rate"] == 0.25
    assert Decimal(candidate["savings_usd"]["exact_cache"]) > 0
    # The same model and usage, so each call costs what the baseline's did, but the hit costs nothing.
    costs = [Decimal(c["cost"]) for c in out["calls"]["baseline"]]
    assert Decimal(candidate["cost_usd"]) == sum(costs) - costs[1]
    assert Decimal(out["change"]["cost_usd"]) == -costs[1]
    assert out["calls"]["candidate"][0]["output"] == "recounted"  # recorded output, the prompt counted exactly


def test_a_model_map_estimates_output_and_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _replay(home, "--config", str(home / "current.yaml"), "--model-map", "gpt-4o=gpt-4.1-mini") == 0
    out = capsys.readouterr().out
    assert "model gpt-4.1-mini" in out and "model gpt-4o " in out  # the baseline is the config as it is
    assert "their output tokens are an estimate (the recorded output token count)" in out
    assert "change: -$" in out
    assert _replay(home, "--config", str(home / "current.yaml"), "--model-map", "gpt-4o", "--json") == 2
    assert "expected FROM=TO" in capsys.readouterr().err


def test_price_override_and_scale(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = home / "prices.yaml"
    prices.write_text("models:\n  - {model: gpt-4o, input_mtok: 25, output_mtok: 100}\n")  # ten times the list price
    assert _replay(home, "--config", str(home / "current.yaml"), "--price-override", str(prices), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert Decimal(out["candidate"]["cost_usd"]) == Decimal(out["baseline"]["cost_usd"]) * 10
    assert _replay(home, "--baseline", str(home / "current.yaml"), "--scale", "3x", "--json") == 0
    out = json.loads(capsys.readouterr().out)  # what-ifs on --baseline, without a candidate config
    assert out["what_ifs"] == {"scale": "3"}
    assert Decimal(out["candidate"]["cost_usd"]) == Decimal(out["baseline"]["cost_usd"]) * 3
    assert _replay(home, "--config", str(home / "current.yaml"), "--scale", "none") == 2


def test_html_report(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = home / "report.html"
    assert (
        _replay(
            home, "--config", str(home / "cached.yaml"), "--baseline", str(home / "current.yaml"), "--html", str(page)
        )
        == 0
    )
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<th>baseline</th><th>candidate</th>" in html
    assert "exact cache hit rate" in html and "<script" not in html
    assert f"report written to {page}" in capsys.readouterr().out


def test_bad_lines_are_counted_and_strict_makes_them_fatal(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (home / "traffic.jsonl").open("a") as handle:
        handle.write("{not json\n")
        handle.write(json.dumps({"model": "gpt-4o", "messages": [{"role": "pilot", "content": "x"}]}) + "\n")
        handle.write(
            json.dumps({"model": "gpt-9", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}) + "\n"
        )
    assert _replay(home, "--config", str(home / "current.yaml"), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["traffic"]["skipped"] == 3
    assert [bad["line"] for bad in out["traffic"]["bad_lines"]] == [5, 6, 7]
    assert "not served" in out["traffic"]["bad_lines"][2]["error"]
    assert out["candidate"]["calls"] == 4
    assert _replay(home, "--config", str(home / "current.yaml"), "--strict") == 2
    err = capsys.readouterr().err
    assert "line 5: not JSON" in err and err.count("\n") == 1


def test_a_config_that_does_not_validate_is_refused_with_config_checks_messages(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = home / "bad.yaml"
    bad.write_text(CURRENT.replace("provider: openai}", "provider: opneai}").replace("exact:", "exakt:"))
    assert _replay(home, "--config", str(bad)) == 2
    err = capsys.readouterr().err
    assert main(["config", "check", str(bad)]) == 2
    check = capsys.readouterr().err
    # The same problems, word for word, but a provider key left unset: a replay calls no provider.
    assert err.splitlines() == [line for line in check.splitlines() if "THRIFTY_TEST_UNSET_KEY" not in line]
    assert len(err.splitlines()) == 3  # the cache key, and both models
    assert "Traceback" not in err


def test_outcome_labels_give_quality_and_unmatched_labels_are_counted(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = home / "labels.csv"
    labels.write_text(
        "prompt,gpt-4o,gpt-4.1-mini\n"
        "What are your opening hours?,True,False\n"
        "Where is the shop?,True,True\n"
        "A question nobody asked,True,True\n"
    )
    code = _replay(
        home,
        "--config",
        str(home / "current.yaml"),
        "--model-map",
        "gpt-4o=gpt-4.1-mini",
        "--outcomes",
        str(labels),
        "--json",
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baseline"]["quality"] == {
        "labelled_calls": 4,
        "mean_correct": 1.0,
        "unlabelled_calls": 0,
        "unmatched_labels": 1,
    }
    assert out["candidate"]["quality"]["mean_correct"] == 0.25
    assert out["candidate"]["quality"]["unmatched_labels"] == 1
