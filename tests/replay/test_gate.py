"""``thrifty gate``: the seed example of issue 12 (a feature that makes five calls per session,
against a baseline config: over +20% it fails; with two of its calls routed to a cheaper model it
passes), the --markdown summary, and bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from thrifty.cli.main import main

CONFIG = """
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key_env: THRIFTY_TEST_UNSET_KEY}
models:
  - {name: gpt-4o, provider: openai}
  - {name: gpt-4o-mini, provider: openai}
cache:
  exact: {enabled: false}
"""

SESSIONS = 4


def _chat(session: int, turn: int) -> dict[str, Any]:
    question = f"Session {session}, turn {turn}: " + "tell me about the history of the city. " * 120
    return {
        "session_id": f"s{session}",
        "feature": "chat",
        "call": f"turn-{turn}",
        "model": "gpt-4o",
        "max_tokens": 400,
        "messages": [{"role": "user", "content": question}],
    }


def _summary(session: int, step: int, model: str) -> dict[str, Any]:
    return {
        "session_id": f"s{session}",
        "feature": "summary",
        "call": f"step-{step}",
        "model": model,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": f"Summarise part {step}: " + "the city grew. " * 25}],
    }


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    config = tmp_path / "current.yaml"
    config.write_text(CONFIG)
    baseline = [_chat(s, t) for s in range(SESSIONS) for t in range(2)]
    feature = [_summary(s, k, "gpt-4o") for s in range(SESSIONS) for k in range(5)]
    # Two of the five calls routed to the cheaper model.
    routed = [_summary(s, k, "gpt-4o-mini" if k < 2 else "gpt-4o") for s in range(SESSIONS) for k in range(5)]
    return {
        "config": config,
        "baseline": _write(tmp_path / "baseline.jsonl", baseline),
        "feature": _write(tmp_path / "feature.jsonl", baseline + feature),
        "routed": _write(tmp_path / "routed.jsonl", baseline + routed),
    }


def _gate(files: dict[str, Path], candidate: str, *extra: str) -> int:
    return main(
        [
            "gate",
            "--config",
            str(files["config"]),
            "--baseline",
            str(files["baseline"]),
            "--candidate",
            str(files[candidate]),
            "--max-increase",
            "20%",
            "--per",
            "session",
            *extra,
        ]
    )


def test_a_five_call_feature_fails_the_gate_and_passes_with_two_calls_routed_cheaper(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _gate(files, "feature", "--json") == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["passed"] is False
    assert 20 < float(verdict["increase_percent"]) < 40
    grew = {(g["kind"], g["name"]) for g in verdict["grew"]}
    assert ("feature", "summary") in grew and ("call", "summary/step-0") in grew
    assert ("feature", "chat") not in grew  # the calls that did not change are not blamed
    assert any("max_tokens" in text for text in verdict["assumptions"])  # the output assumption is stated

    assert _gate(files, "routed", "--json") == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["passed"] is True
    assert 0 < float(verdict["increase_percent"]) <= 20


def test_the_text_says_which_feature_and_calls_grew(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _gate(files, "feature") == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL: cost per session")
    assert "grew: feature summary:" in out
    assert "grew: call summary/step-4:" in out


def test_markdown_is_a_pull_request_comment(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _gate(files, "routed", "--markdown") == 0
    out = capsys.readouterr().out
    assert out.startswith("### ") and "thrifty cost gate passed" in out
    assert "| cost per session |" in out
    assert "- candidate: output tokens of" in out


def test_per_month_multiplies_the_session_cost(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _gate(files, "feature", "--json", "--per", "session") == 1
    per_session = json.loads(capsys.readouterr().out)
    assert _gate(files, "feature", "--json", "--per", "month", "--sessions-per-day", "1000") == 1
    per_month = json.loads(capsys.readouterr().out)
    from decimal import Decimal

    assert Decimal(per_month["candidate_usd"]) == Decimal(per_session["candidate_usd"]) * 1000 * 30
    assert per_month["increase_percent"] == per_session["increase_percent"]


def test_a_replay_json_output_is_a_side(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "--traffic", str(files["feature"]), "--config", str(files["config"]), "--json"]) == 0
    saved = tmp_path / "replayed.json"
    saved.write_text(capsys.readouterr().out)
    assert _gate(files, "feature", "--json") == 1
    direct = json.loads(capsys.readouterr().out)
    code = main(
        [
            "gate",
            "--config",
            str(files["config"]),
            "--baseline",
            str(files["baseline"]),
            "--candidate",
            str(saved),
            "--json",
        ]
    )
    assert code == 1
    assert json.loads(capsys.readouterr().out)["candidate_usd"] == direct["candidate_usd"]


def test_bad_input_is_one_line_and_exit_2(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _gate(files, "feature", "--per", "month") == 2
    assert "--per month needs --sessions-per-day" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers: {}\nmodels:\n  - {name: gpt-4o, provider: nowhere}\n")
    assert (
        main(["gate", "--baseline", str(broken), "--candidate", str(broken), "--traffic", str(files["baseline"])]) == 2
    )
    err = capsys.readouterr().err
    assert "no provider 'nowhere'" in err and "Traceback" not in err
    no_limit = _write(
        tmp_path / "nolimit.jsonl", [{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}]
    )
    assert main(["gate", "--baseline", str(no_limit), "--candidate", str(no_limit)]) == 2
    assert "line 1: no recorded usage and no max_tokens: give --output-tokens N" in capsys.readouterr().err
    assert main(["gate", "--baseline", str(no_limit), "--candidate", str(no_limit), "--output-tokens", "50"]) == 0
    capsys.readouterr()
    assert main(["gate", "--baseline", str(no_limit), "--candidate", str(no_limit), "--max-increase", "lots"]) == 2
