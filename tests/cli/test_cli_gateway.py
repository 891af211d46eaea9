"""``thrifty serve``, ``thrifty keys`` and ``thrifty config check`` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import openai
import pytest

from thrifty.cli.main import main

CONFIG = """
server: {port: 4999}
storage: {ledger: "sqlite:///%(home)s/ledger.db"}
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key_env: THRIFTY_TEST_OPENAI_KEY}
models:
  - {name: gpt-4o, provider: openai, fallbacks: [gpt-4o-mini]}
  - {name: gpt-4o-mini, provider: openai}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_demo_works_with_the_official_sdks(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "THRIFTY_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [sys.executable, "-m", "thrifty.cli.main", "serve", "--demo", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the demo gateway did not become ready"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo", max_retries=0)
        reply = client.chat.completions.with_raw_response.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello"}], max_tokens=10
        )
        assert reply.parse().choices[0].message.content
        assert float(reply.headers["x-thrifty-cost-usd"]) > 0
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "thrifty.cli.main",
            "report",
            "--json",
            "--ledger",
            f"sqlite:///{tmp_path / 'home' / 'demo.db'}",  # the demos' own store
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(report.stdout)["totals"]["calls"] == 1  # written out at shutdown
    assert not (tmp_path / "home" / "thrifty.db").exists()  # never the ledger of real calls


def test_serve_refuses_bad_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve"]) == 2
    assert "--config" in capsys.readouterr().err
    assert main(["serve", "--demo", "--config", str(tmp_path / "x.yaml")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: {}\nmodels: []\n")
    assert main(["serve", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and err.count("\n") == 2  # one line for the --demo clash, one here


def test_config_check_reports_each_problem_with_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "gateway.yaml"
    good.write_text(CONFIG % {"home": tmp_path})
    monkeypatch.delenv("THRIFTY_TEST_OPENAI_KEY", raising=False)
    assert main(["config", "check", str(good)]) == 2
    assert "providers.openai.api_key_env: $THRIFTY_TEST_OPENAI_KEY is not set" in capsys.readouterr().err
    monkeypatch.setenv("THRIFTY_TEST_OPENAI_KEY", "sk-x")
    assert main(["config", "check", str(good)]) == 0
    assert "ok" in capsys.readouterr().out

    cases = {
        "models:\n  - {name: a, provider: nowhere}\nproviders: {}\n": "no provider 'nowhere'",
        "providers:\n  p: {kind: openai, base_url: http://x, api_key: sk-123}\nmodels: [{name: a, provider: p}]\n": "keys never go in the config file",
        "providers:\n  p: {kind: openai, base_url: ftp://x}\nmodels: [{name: a, provider: p}]\n": "providers.p.base_url",
        "providers:\n  p: {kind: openai, base_url: http://x}\nmodels: [{name: a, provider: p, fallbacks: [b]}]\n": "no model named 'b'",
        "providers:\n  p: {kind: openai, base_url: http://x}\nmodels: [{name: mystery-model, provider: p}]\n": "mystery-model",
        "providers: [\n": "invalid YAML",
    }
    for text, says in cases.items():
        path = tmp_path / "case.yaml"
        path.write_text(text)
        assert main(["config", "check", str(path)]) == 2, text
        assert says in capsys.readouterr().err, text


def test_keys_are_created_listed_and_revoked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert main(["keys", "create", "--user", "u1", "--team", "t1", "--ledger", ledger, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["secret"].startswith("thr_")
    assert main(["keys", "list", "--ledger", ledger, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["id"] for k in listed] == [created["id"]]
    assert created["secret"] not in json.dumps(listed)
    assert main(["keys", "revoke", created["id"], "--ledger", ledger]) == 0
    capsys.readouterr()
    assert main(["keys", "revoke", created["id"], "--ledger", ledger]) == 2
    assert "no active key" in capsys.readouterr().err
    assert main(["keys", "create", "--user", "", "--ledger", ledger]) == 2
