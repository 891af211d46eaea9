"""``thrifty config check`` as a user meets it: every problem of a file in one pass, each on a line
of its own (and an item of its own in ``--json``), "did you mean" for a misspelt key, fragments
(routing, limits, price files) checkable on their own, and every shipped example passing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thrifty.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EIGHT_ERRORS = """
server: {prot: 4000}                           # 1. a misspelt key
auth: sometimes                                # 2. a bad enum value
retry: {attempts: many}                        # 3. the wrong type
cache: {exact: {ttl_s: -5}}                    # 4. a negative number
rate_limit: {max_wait_s: 1}                    # 5. a misspelt section
providers:
  sim: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  - {name: gpt-4o-mini, provider: sim, fallbacks: [gpt-5]}   # 6. an unknown fallback
  - {name: gpt-4o, provider: nowhere}                         # 7. an unknown provider
tiers: {small: [gpt-4o-mini], large: [gpt-4o]}
routing: {rules: [{tier: medium}]}             # 8. an unknown tier
"""

EXPECTED = [
    "server.prot: unknown key; did you mean 'port'?",
    "auth: Input should be 'auto', 'keys' or 'none'",
    "retry.attempts: Input should be a valid integer",
    "cache.exact.ttl_s: Input should be greater than 0",
    "rate_limit: unknown section; did you mean 'rate_limits'?",
    "models[0].fallbacks: no model named 'gpt-5'",
    "models[1].provider: no provider 'nowhere' (defined: sim)",
    "routing.rules[0].tier: no tier 'medium' (tiers: small, large)",
]


def test_eight_planted_errors_come_out_in_one_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text(EIGHT_ERRORS)
    assert main(["config", "check", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(EXPECTED), lines
    for says in EXPECTED:
        assert sum(line.startswith(f"thrifty: error: {path}: {says}") for line in lines) == 1, (says, lines)

    assert main(["config", "check", "--json", str(path)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["kind"] == "gateway"
    assert len(report["problems"]) == len(EXPECTED) == len(report["items"])
    for says in EXPECTED:
        assert sum(problem.startswith(f"{path}: {says}") for problem in report["problems"]) == 1, says
    wheres = {item["where"] for item in report["items"]}
    assert wheres == {says.split(": ", 1)[0] for says in EXPECTED}
    assert {"where": "server.prot", "message": "unknown key", "hint": "did you mean 'port'?"} in report["items"]


def test_a_misspelt_key_gets_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text(
        "server: {prot: 4000}\n"
        "providers: {sim: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
        "models: [{name: gpt-4o, provider: sim}]\n"
    )
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"thrifty: error: {path}: server.prot: unknown key; did you mean 'port'?"
    assert main(["config", "check", "--json", str(path)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == [f"{path}: server.prot: unknown key; did you mean 'port'?"]
    assert report["items"] == [{"where": "server.prot", "message": "unknown key", "hint": "did you mean 'port'?"}]


def test_the_routing_example_checks_ok_as_a_fragment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(EXAMPLES / "routing.yaml")]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["config", "check", "--json", str(EXAMPLES / "routing.yaml")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["kind"] == "fragment" and "routing" in report["sections"]


def test_a_fragment_is_checked_section_by_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(
        "budgets: {limits: [{scope: user, usd: -1, window: day}]}\n"
        "rate_limits: {limits: [{scope: user, requests_per_minute: 0}]}\n"
        "routng: {policy: rules}\n"
        "tiers: {small: [a]}\n"
        "routing: {rules: [{tier: big}]}\n"
    )
    assert main(["config", "check", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4, lines
    assert any("budgets.limits[0].usd: Input should be greater than or equal to 0" in line for line in lines)
    assert any("rate_limits.limits[0].requests_per_minute:" in line for line in lines)
    assert any("routng: unknown section; did you mean 'routing'?" in line for line in lines)
    assert any("routing.rules[0].tier: no tier 'big'" in line for line in lines)


def test_section_names_what_the_file_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache.yaml"
    cache.write_text("exact: {scope: team}\nsemantic: {enabled: false, treshold: 0.9}\n")
    assert main(["config", "check", "--section", "cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"thrifty: error: {cache}: cache.semantic.treshold: unknown key; did you mean 'threshold'?"

    whole = tmp_path / "gateway.yaml"
    whole.write_text("providers: {}\nmodels: []\nrouting: {policy: cheapest}\ntiers: {small: [x]}\n")
    assert main(["config", "check", "--section", "routing", "--section", "tiers", str(whole)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["config", "check", "--section", "budgets", str(whole)]) == 2
    assert "budgets: the file has no budgets: section" in capsys.readouterr().err
    assert main(["config", "check", "--section", "nonsense", str(whole)]) == 2
    assert "--section" in capsys.readouterr().err


def _api_key_envs(path: Path) -> dict[str, str]:
    import yaml

    document = yaml.safe_load(path.read_text())
    providers = document.get("providers", {}) if isinstance(document, dict) else {}
    return {spec["api_key_env"]: "sk-example" for spec in providers.values() if spec.get("api_key_env")}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_passes_config_check(path: Path) -> None:
    env = {**os.environ, **_api_key_envs(path)}
    run = subprocess.run(
        [sys.executable, "-m", "thrifty.cli.main", "config", "check", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"{path}: ok"), run.stdout


# Fields a valid example cannot set without files or services of its own; it shows them in comments.
COMMENTED = {
    ("RoutingSpec", "learned"): "learned:",
    ("LearnedSpec", "path"): "path:",
    ("LearnedSpec", "thresholds"): "thresholds:",
    ("EmbedderSpec", "base_url"): "base_url:",
    ("EmbedderSpec", "model"): "model:",
    ("EmbedderSpec", "dim"): "dim:",
    ("EmbedderSpec", "api_key_env"): "api_key_env:",
    ("PricesSpec", "models"): "inline {models:",
    ("PricesSpec", "default_price"): "default_price:",
    ("DefaultPrice", "input_mtok"): "input_mtok:",
    ("DefaultPrice", "output_mtok"): "output_mtok:",
    ("PriceFile", "default_price"): "default_price:",
}


def test_the_gateway_example_shows_every_setting() -> None:
    """Every field of every section of the gateway config is set somewhere in examples/gateway.yaml
    (model prices: in examples/prices.yaml, which it names), or, where a valid example cannot set
    it, shown in a comment."""
    import typing

    import yaml
    from pydantic import BaseModel

    from thrifty.config.gateway import GatewayConfig
    from thrifty.config.prices import PriceFile

    def models_in(annotation: object) -> list[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [model for arg in typing.get_args(annotation) for model in models_in(arg)]

    every: set[tuple[str, str]] = set()
    pending: list[type[BaseModel]] = [GatewayConfig, PriceFile]
    while pending:
        model = pending.pop()
        if any(name == model.__name__ for name, _ in every):
            continue
        every |= {(model.__name__, field) for field in model.model_fields}
        for info in model.model_fields.values():
            pending += models_in(info.annotation)

    shown: set[tuple[str, str]] = set()

    def walk(value: object, annotation: object) -> None:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is typing.Annotated:
            walk(value, args[0])
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if isinstance(value, dict):
                for key, item in value.items():
                    if key in annotation.model_fields:  # a subclass's instance shows its bases' fields too
                        bases = [b for b in annotation.__mro__ if isinstance(b, type) and issubclass(b, BaseModel)]
                        shown.update((base.__name__, key) for base in bases if key in base.model_fields)
                        walk(item, annotation.model_fields[key].annotation)
        elif origin is list and isinstance(value, list):
            for item in value:
                walk(item, args[0])
        elif origin is dict and isinstance(value, dict):
            for item in value.values():
                walk(item, args[1])
        elif args:  # a union: every member that takes the value
            for member in args:
                walk(value, member)

    gateway_text, prices_text = (EXAMPLES / "gateway.yaml").read_text(), (EXAMPLES / "prices.yaml").read_text()
    walk(yaml.safe_load(gateway_text), GatewayConfig)
    walk(yaml.safe_load(prices_text), PriceFile)
    shown |= {("ModelPrice", "model")}  # a model's own price names its model itself
    lines = (gateway_text + prices_text).splitlines()
    comments = "\n".join(line.split("#", 1)[1] for line in lines if "#" in line)
    missing = sorted(field for field in every - shown if field not in COMMENTED)
    assert not missing, f"examples/gateway.yaml does not set {missing}"
    for field, text in COMMENTED.items():
        assert field in shown or text in comments, f"examples/gateway.yaml does not show {field} ({text})"


def test_a_refusal_pattern_that_cannot_be_joined_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each pattern compiled alone, but joined with the built-in ones a global flag crashed the
    router's build (an internal error, exit 1) instead of naming the pattern."""
    path = tmp_path / "thrifty.yaml"
    path.write_text(
        "providers: {sim: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
        "models: [{name: gpt-4o, provider: sim}]\n"
        "tiers: {only: [gpt-4o]}\n"
        "routing: {escalation: {refusal_patterns: ['(?i)^as an ai']}}\n"
    )
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "routing.escalation.refusal_patterns: '(?i)^as an ai' cannot be one of several patterns" in err
