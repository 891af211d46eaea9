"""No secret in any log, file or command line: a gateway started with a password-protected
PostgreSQL ledger, a password-protected Redis (exact cache and budgets), a provider key and an
admin token in its environment, driven with a virtual key, leaves none of them in its banner and
logs (at debug level), in the files under its home and journal, or in the command line of any of
its processes (its ledger sidecar included). The CLI's errors about unusable store URLs name them
redacted too."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import openai
import pytest
import yaml

from tests.cli.test_cli_gateway import free_port
from tests.support.processes import wait_ready
from thrifty.core.redact import redact_text, redact_url, url_origin, url_secrets
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
    # an unencoded @ in a password is how people write them: none of it is left
    assert redact_url("postgresql://u:p@ss@host/db") == "postgresql://u:***@host/db"
    assert redact_text("at postgresql://u:p@ss@host/db.") == "at postgresql://u:***@host/db."
    # what a driver quotes back from a malformed URL
    assert set(url_secrets("postgresql://u:pw%zz1@h/db?password=abc%21")) == {"pw%zz1", "abc%21", "abc!"}
    assert redact_text('invalid token: "pw%zz1"', url_secrets("postgresql://u:pw%zz1@h/db")) == 'invalid token: "***"'
    assert url_origin("https://hooks.example.com/services/T0/B0/SECRET") == "https://hooks.example.com"


def test_uvicorns_own_log_lines_redact_too(capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn is configured to leave logging alone (``log_config=None``): its loggers propagate to
    the process's one handler, so what it logs, a lifespan failure's message say, is redacted as
    thrifty's own lines are, and comes out in the same format (text or JSON)."""
    import logging

    from thrifty.config.gateway import ServerSpec
    from thrifty.core.redact import redact_log_handlers
    from thrifty.web.guard import uvicorn_config
    from thrifty.web.logfmt import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    # as in a fresh `thrifty serve`: no uvicorn logging set up by another server in this process
    uvicorn_loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    kept = [(logger.handlers[:], logger.propagate) for logger in uvicorn_loggers]
    for logger in uvicorn_loggers:
        logger.handlers[:], logger.propagate = [], True
    try:
        for log_format in ("text", "json"):
            configure_logging("info", log_format)  # type: ignore[arg-type]
            uvicorn_config(object(), ServerSpec()).configure_logging()
            redact_log_handlers()
            assert not logging.getLogger("uvicorn").handlers and logging.getLogger("uvicorn.error").propagate
            logging.getLogger("uvicorn.error").error("failed: %s", "redis://:hunter2@h/0")
            err = capsys.readouterr().err
            assert "redis://:***@h/0" in err and "hunter2" not in err
            if log_format == "json":
                assert json.loads(err.strip().splitlines()[-1])["logger"] == "uvicorn.error"
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        for logger, (handlers, propagate) in zip(uvicorn_loggers, kept, strict=True):
            logger.handlers[:], logger.propagate = handlers, propagate


def test_cli_errors_name_store_urls_without_their_passwords(tmp_path: Path) -> None:
    password = f"Pw-{secrets.token_hex(8)}"
    for args in (
        ["keys", "list", "--ledger", f"mysql://u:{password}@h/db"],
        ["keys", "list", "--ledger", f"postgresql://u:{password}%zz@127.0.0.1:1/db"],
        ["report", "--ledger", f"postgresql://u@127.0.0.1:1/db?password={password}"],
        ["budgets", "show", "--store", f"memcached://u:{password}@h"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "thrifty.cli.main", *args],
            check=False,
            capture_output=True,
            cwd=tmp_path,
            timeout=60,
        )
        output = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode != 0 and "error" in output, output
        assert password not in output, output


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own that wants a password (given on its stdin, not its argv)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    import redis

    password = f"Rp-{secrets.token_hex(12)}"
    port = free_port()
    conf = f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\nrequirepass {password}\ndir {tmp_path}\n'
    server = subprocess.Popen(["redis-server", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert server.stdin is not None
    server.stdin.write(conf.encode())
    server.stdin.close()
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                if redis.Redis.from_url(url, socket_connect_timeout=1).ping():
                    break
            except redis.RedisError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the password-protected redis-server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


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


def test_no_secret_in_logs_files_or_command_lines(
    postgres_url: str, simulator_url: str, redis_with_password: str, tmp_path: Path
) -> None:
    import psycopg
    import redis

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
                "storage": {"ledger": ledger, "journal_dir": str(home / "journal"), "redis": redis_with_password},
                "providers": {
                    "openai": {"kind": "openai", "base_url": f"{simulator_url}/v1", "api_key_env": "LEAK_TEST_KEY"}
                },
                "models": [{"name": "gpt-4o-mini", "provider": "openai"}],
                "admin": {"token_env": "LEAK_TEST_ADMIN"},
                "budgets": {"limits": [{"scope": "team", "value": "t", "usd": "5", "window": "day"}]},
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
    redis_password = urlsplit(redis_with_password).password
    assert redis_password
    secrets_ = [password, redis_password, provider_key, admin_token, virtual_key]
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=virtual_key, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
        httpx2.get(f"{url}/admin/budgets", headers={"authorization": f"Bearer {admin_token}"})
        store = redis.Redis.from_url(redis_with_password)
        assert store.dbsize() > 0, "the exact cache and the budget counters should be in the password-protected Redis"
        store.close()
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
    assert f"redis: redis://:***@127.0.0.1:{urlsplit(redis_with_password).port}/0" in text
    assert not [s for s in secrets_ if s in text], "a secret in the gateway's log"
    for path in [*home.rglob("*"), *tmp_path.glob("*.db")]:
        if path.is_file():
            content = path.read_bytes().decode(errors="replace")
            assert not [s for s in secrets_ if s in content], f"a secret in {path}"
