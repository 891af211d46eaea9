"""No secret in any log, file or command line: a gateway started with a password-protected
PostgreSQL ledger, a provider key and an admin token in its environment, driven with a virtual
key, leaves none of them in its banner and logs (at debug level), in the files under its home and
journal, or in the command line of any of its processes (its ledger sidecar included)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import openai
import pytest
import yaml

from tests.test_budgets_concurrency import _wait_ready
from tests.test_cli_gateway import free_port
from thrifty.core.redact import redact_text, redact_url
from thrifty.stores.keys import open_keys


def test_urls_lose_their_passwords_and_nothing_else() -> None:
    assert (
        redact_url("postgresql://role:pa%40ss@db:5432/x?sslmode=require")
        == "postgresql://role:***@db:5432/x?sslmode=require"
    )
    assert redact_url("redis://:hunter2@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("postgresql://u@h/db?password=hunter2").endswith("password=***")
    assert redact_url("sqlite:///.thrifty/thrifty.db") == "sqlite:///.thrifty/thrifty.db"
    assert redact_text("failed: redis://u:hunter2@h:1/0 then postgres://a:b@c/d") == (
        "failed: redis://u:***@h:1/0 then postgres://a:***@c/d"
    )


def _process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def test_no_secret_in_logs_files_or_command_lines(postgres_url: str, simulator_url: str, tmp_path: Path) -> None:
    import psycopg

    password = f"Pw-{secrets.token_hex(12)}"
    role = f"thrifty_pw_{secrets.token_hex(4)}"
    database = urlsplit(postgres_url).path.lstrip("/")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'".encode())
        conn.execute(f'ALTER DATABASE "{database}" OWNER TO {role}'.encode())
        conn.execute(f"GRANT ALL ON SCHEMA public TO {role}".encode())
    parts = urlsplit(postgres_url)
    ledger = f"postgresql://{role}:{password}@{parts.hostname}:{parts.port or 5432}/{database}"
    provider_key = f"sk-provider-{secrets.token_hex(12)}"
    admin_token = f"admin-{secrets.token_hex(12)}"
    port = free_port()
    home = tmp_path / "home"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"port": port},
                "storage": {"ledger": ledger, "journal_dir": str(home / "journal")},
                "providers": {
                    "openai": {"kind": "openai", "base_url": f"{simulator_url}/v1", "api_key_env": "LEAK_TEST_KEY"}
                },
                "models": [{"name": "gpt-4o-mini", "provider": "openai"}],
                "admin": {"token_env": "LEAK_TEST_ADMIN"},
            }
        )
    )
    keys = open_keys(ledger)
    _, virtual_key = keys.create(user="u", team="t", feature=None)
    keys.close()
    log = tmp_path / "gateway.log"
    env = {**os.environ, "LEAK_TEST_KEY": provider_key, "LEAK_TEST_ADMIN": admin_token, "THRIFTY_HOME": str(home)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "thrifty.cli.main", "serve", "--config", str(config), "--log-level", "debug"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    secrets_ = [password, provider_key, admin_token, virtual_key]
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, log)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=virtual_key, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
        httpx2.get(f"{url}/admin/budgets", headers={"authorization": f"Bearer {admin_token}"})
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key=password, max_retries=0).models.list()
        pids = _process_tree(process.pid)
        assert len(pids) >= 2, "the ledger sidecar should be running"
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert not [s for s in secrets_ if s in cmdline], f"a secret in the command line of {pid}: {cmdline}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "ledger: postgresql://" in text and ":***@" in text  # the banner names the ledger, redacted
    assert not [s for s in secrets_ if s in text], "a secret in the gateway's log"
    for path in [*home.rglob("*"), *tmp_path.glob("*.db")]:
        if path.is_file():
            content = path.read_bytes().decode(errors="replace")
            assert not [s for s in secrets_ if s in content], f"a secret in {path}"
