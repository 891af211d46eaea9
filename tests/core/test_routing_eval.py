"""``thrifty eval router`` and ``thrifty router train`` on the development data (GSM8K outcomes
from RouteLLM): the learned router, trained on one part, beats a random router on the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.shared_data import shared_data
from thrifty.cli.main import main
from thrifty.cli.routing import eval_router, router

GSM8K = shared_data("routing-outcomes/gsm8k.csv")


@pytest.fixture(scope="module")
def report() -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(eval_router, ["--outcomes", str(GSM8K), "--split", "0.7", "--seed", "0", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_the_learned_router_beats_random_on_the_held_out_part(report: dict) -> None:  # type: ignore[type-arg]
    by_name = {r["router"]: r for r in report["routers"]}
    assert set(by_name) == {"learned", "rules", "random", "oracle"}
    assert report["rows"] == 1319 and report["scored_rows"] == 396
    assert report["weak"]["model"] == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert report["strong"]["model"] == "gpt-4-1106-preview"
    learned, random = by_name["learned"], by_name["random"]
    assert random["apgr"] == pytest.approx(0.5)
    assert random["cpt50"] == pytest.approx(0.5) and random["cpt80"] == pytest.approx(0.8)
    assert learned["apgr"] > random["apgr"] + 0.05
    assert learned["cpt50"] < random["cpt50"] and learned["cpt80"] < random["cpt80"]
    assert learned["at_95pct_quality"]["cost_saved"] > random["at_95pct_quality"]["cost_saved"]
    curve = learned["curve"]
    assert curve[0]["strong_share"] == 0 and curve[-1]["strong_share"] == 1
    assert curve[0]["quality"] == pytest.approx(report["weak"]["quality"])
    assert curve[-1]["quality"] == pytest.approx(report["strong"]["quality"])
    assert float(curve[-1]["cost_usd"]) == pytest.approx(float(report["strong_cost_usd"]))


def test_a_trained_router_file_is_scored_on_the_rows_it_did_not_see(tmp_path: Path, report: dict) -> None:  # type: ignore[type-arg]
    out = tmp_path / "router.json"
    runner = CliRunner()
    trained = runner.invoke(router, ["train", "--outcomes", str(GSM8K), "--out", str(out), "--split", "0.7"])
    assert trained.exit_code == 0, trained.output
    assert "trained on 923 rows" in trained.output
    scored = runner.invoke(eval_router, ["--outcomes", str(GSM8K), "--router", str(out), "--split", "0.7"])
    assert scored.exit_code == 0, scored.output
    assert "learned" in scored.output and "APGR" in scored.output
    from_file = next(line for line in scored.output.splitlines() if line.startswith("learned "))
    same = {r["router"]: r for r in report["routers"]}["learned"]
    assert from_file.split()[1] == f"{same['apgr']:.3f}"  # the same router as eval's own training


def test_rules_from_a_config_file_are_scored(tmp_path: Path) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(
        "tiers: {small: [a], large: [b]}\nrouting:\n  rules:\n    - {name: long, min_prompt_tokens: 54, tier: large}\n"
    )
    result = CliRunner().invoke(
        eval_router, ["--outcomes", str(GSM8K), "--split", "0.7", "--config", str(config), "--json"]
    )
    assert result.exit_code == 0, result.output
    rules = {r["router"]: r for r in json.loads(result.output)["routers"]}["rules"]
    assert rules["apgr"] != pytest.approx(0.5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--outcomes", "nope.csv"], "nope.csv: no such file"),
        (["--outcomes", str(GSM8K), "--split", "1.5"], "--split: the share of rows to train on"),
        (["--outcomes", str(GSM8K), "--weak", "nobody"], "no column 'nobody'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(eval_router, args)
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"question,a,b\nx,True,False\n", "no 'prompt' column (columns: question, a, b)"),
        (b"prompt,a,b\nx,maybe,False\n", "expected the results of exactly two models, found 1 (b)"),
        (b"prompt,a\nx,True\n", "expected the results of exactly two models"),
        (b"prompt,a,b\n", "expected the results of exactly two models"),
        (b"", "no 'prompt' column"),
        (bytes(range(128, 256)) * 4, "cannot be read as CSV"),
    ],
)
@pytest.mark.parametrize("command", ["eval", "train"])
def test_a_bad_outcomes_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str, command: str
) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_bytes(content)
    if command == "eval":
        args = ["eval", "router", "--outcomes", str(path), "--split", "0.7"]
    else:
        args = ["router", "train", "--outcomes", str(path), "--out", str(tmp_path / "r.json")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert err.startswith(f"thrifty: error: {path}: ")
