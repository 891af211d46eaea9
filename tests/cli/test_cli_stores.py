"""Every CLI command finds the right data: ``--config``/``THRIFTY_CONFIG`` first, then
``--ledger``/``THRIFTY_LEDGER_URL``, then the default; relative paths in a config are anchored at
its folder wherever the command runs; read-only commands never create a database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thrifty.cli.main import main
from thrifty.config.gateway import load_gateway_config

CONFIG = """
storage: {ledger: "sqlite:///gw2.db", journal_dir: "journal2"}
providers: {openai: {kind: openai, base_url: "http://127.0.0.1:9/v1"}}
models: [{name: gpt-4o-mini, provider: openai}]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "gateway.yaml"
    path.write_text(CONFIG)
    return path


def test_relative_paths_in_a_config_are_anchored_at_its_folder(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_gateway_config(config)
    assert loaded.storage.ledger == f"sqlite:///{config.parent / 'gw2.db'}"
    assert loaded.storage.journal_dir == str(config.parent / "journal2")
    assert main(["cache", "clear", "--config", str(config)]) == 0
    assert not (elsewhere / "gw2.db").exists()  # nothing made in the working directory


def test_keys_take_the_config_and_thrifty_config(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_LEDGER_URL", raising=False)
    assert main(["keys", "create", "--user", "u1", "--config", str(config), "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert (config.parent / "gw2.db").exists()
    monkeypatch.setenv("THRIFTY_CONFIG", str(config))
    assert main(["keys", "list", "--json"]) == 0
    assert [k["id"] for k in json.loads(capsys.readouterr().out)] == [created["id"]]
    assert main(["keys", "list"]) == 0
    out, err = capsys.readouterr()
    assert created["id"] in out
    assert f"from the config {config}" in err and "gw2.db" in err  # says which store it used
    assert main(["keys", "revoke", created["id"]]) == 0


def test_read_only_commands_never_create_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    missing = tmp_path / "none.db"
    assert main(["keys", "list", "--ledger", f"sqlite:///{missing}"]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert main(["keys", "revoke", "key_x", "--ledger", f"sqlite:///{missing}"]) == 2
    assert not missing.exists()


def test_report_takes_the_config_and_never_creates_a_database(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_LEDGER_URL", raising=False)
    assert main(["report", "--config", str(config)]) == 2  # nothing recorded there yet
    assert "no ledger at" in capsys.readouterr().err and not (config.parent / "gw2.db").exists()
    assert main(["keys", "create", "--config", str(config)]) == 0  # makes the database
    capsys.readouterr()
    monkeypatch.setenv("THRIFTY_CONFIG", str(config))
    assert main(["report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["calls"] == 0
    assert main(["report"]) == 0
    assert "gw2.db" in capsys.readouterr().err
