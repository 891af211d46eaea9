"""Whether a gateway demands keys never depends on how many are active: revoking every key leaves a
gateway that refuses everything (on SQLite and PostgreSQL), ``auth:`` says otherwise only when a
user writes it, a gateway bound beyond loopback is never open by accident, and the key is checked
before anything of the request is read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest

from tests.cli.test_cli_gateway import free_port
from tests.support.gateway import RunningGateway, running_gateway
from thrifty.gateway.auth import KeyCache, is_loopback
from thrifty.stores.keys import KeyStore, open_keys

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def refused(gateway: RunningGateway, secret: str | None) -> list[int]:
    """The status of one call on each route (chat, messages, embeddings, models) with ``secret``."""
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    base = gateway.url
    chat = {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 5}
    return [
        httpx2.post(f"{base}/v1/chat/completions", json=chat, headers=headers).status_code,
        httpx2.post(
            f"{base}/v1/messages",
            json={**chat, "model": "claude-haiku-4-5"},
            headers={"x-api-key": secret} if secret else {},
        ).status_code,
        httpx2.post(
            f"{base}/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"}, headers=headers
        ).status_code,
        httpx2.get(f"{base}/v1/models", headers=headers).status_code,
    ]


def test_revoking_every_key_leaves_a_gateway_that_refuses_everything(
    simulator_url: str, tmp_path: Path, ledger_url: str
) -> None:
    store = open_keys(ledger_url)
    early, _ = store.create(user="a", team=None, feature=None)
    store.revoke(early.id)
    middle, middle_secret = store.create(user="b", team=None, feature=None)
    last, last_secret = store.create(user="c", team="red", feature=None)
    storage = {"ledger": ledger_url, "journal_dir": str(tmp_path / "journal")}
    with running_gateway(simulator_url, tmp_path, storage=storage) as gateway:
        assert gateway.runtime.keys.required
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=last_secret, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        assert store.revoke(middle.id) and store.revoke(last.id)
        gateway.runtime.keys.load()  # what the background refresh does every few seconds
        for secret in (None, "thr_garbage_0123456789", middle_secret, last_secret):
            assert refused(gateway, secret) == [401, 401, 401, 401], secret
        health = httpx2.get(f"{gateway.url}/healthz").json()
        assert health["keys"]["required"] is True and "revoked keys stay refused" in health["keys"]["why"]
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=gateway.url, api_key=last_secret, max_retries=0).messages.create(
                model="claude-haiku-4-5",
                messages=HELLO,  # type: ignore[arg-type]
                max_tokens=5,
            )
    store.close()


@pytest.fixture
def keyed_gateway(simulator_url: str, tmp_path: Path) -> Iterator[tuple[RunningGateway, str]]:
    with running_gateway(simulator_url, tmp_path) as gateway:
        store = open_keys(gateway.runtime.config.storage.ledger)
        _, secret = store.create(user="u", team=None, feature=None)
        store.close()
        gateway.runtime.keys.load()
        yield gateway, secret


def test_the_key_is_checked_before_the_body_is_read_on_every_route(keyed_gateway: tuple[RunningGateway, str]) -> None:
    gateway, secret = keyed_gateway
    base = gateway.url
    garbage = b"{not json"
    for path in ("/v1/chat/completions", "/v1/messages", "/v1/embeddings"):
        response = httpx2.post(f"{base}{path}", content=garbage, headers={"content-type": "application/json"})
        assert response.status_code == 401, (path, response.text)
        # With the key, the same body is a 400 naming the JSON problem: the order is key, then body.
        keyed = {"content-type": "application/json", "authorization": f"Bearer {secret}", "x-api-key": secret}
        assert httpx2.post(f"{base}{path}", content=garbage, headers=keyed).status_code == 400
    assert httpx2.get(f"{base}/v1/models").status_code == 401
    assert httpx2.get(f"{base}/v1/models", headers={"authorization": f"Bearer {secret}"}).status_code == 200
    assert httpx2.get(f"{base}/no/such/route").status_code == 401  # not even which routes exist
    anthropic_error = httpx2.post(f"{base}/v1/messages", content=garbage).json()
    assert anthropic_error["type"] == "error" and anthropic_error["error"]["type"] == "authentication_error"
    assert httpx2.get(f"{base}/healthz").status_code == 200
    assert httpx2.get(f"{base}/health").status_code == 200
    assert httpx2.get(f"{base}/readyz").status_code == 200


def _cache(store: KeyStore, **options: object) -> KeyCache:
    cache = KeyCache(store, **options)  # type: ignore[arg-type]
    cache.load()
    return cache


def test_the_mode_follows_the_config_and_every_key_ever_created(tmp_path: Path) -> None:
    store = open_keys(f"sqlite:///{tmp_path / 'keys.db'}")
    empty = _cache(store)
    assert not empty.required and "no virtual key was ever created" in empty.why
    assert _cache(store, mode="keys").required  # auth: keys with no key at all: nothing gets in
    assert _cache(store, loopback=False).required  # beyond loopback, never open by accident
    beyond = _cache(store)
    beyond.listen_on("0.0.0.0")
    assert beyond.required and "beyond loopback" in beyond.why
    running = _cache(store)
    info, _ = store.create(user=None, team=None, feature=None)
    running.load()
    assert running.required
    store.revoke(info.id)
    running.load()
    assert running.required  # revoking the last key does not open the gateway
    assert _cache(store).required  # nor does a restart
    opened = _cache(store, mode="none", loopback=False)
    assert not opened.required and "anyone who reaches it can spend" in opened.why
    store.close()


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.1")
    assert not is_loopback("gateway.internal")


def _banner(config: Path, *extra: str) -> str:
    """The startup banner of ``thrifty serve`` (the process is stopped once it is printed)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "thrifty.cli.main", "serve", "--config", str(config), *extra],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.strip().startswith("keys:"):
                break
    finally:
        process.terminate()
        process.wait(timeout=30)
    return "".join(lines)


def test_the_banner_says_keys_are_required_when_every_key_is_revoked(simulator_url: str, tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"server: {{port: {free_port()}}}\n"
        f'storage: {{ledger: "{ledger}"}}\n'
        f'providers: {{openai: {{kind: openai, base_url: "{simulator_url}/v1"}}}}\n'
        "models: [{name: gpt-4o-mini, provider: openai}]\n"
    )
    assert "keys: not required (no virtual key was ever created" in _banner(config)
    assert "keys: required (listening beyond loopback" in _banner(
        config, "--host", "0.0.0.0", "--port", str(free_port())
    )
    store = open_keys(ledger)
    info, _ = store.create(user=None, team=None, feature=None)
    store.revoke(info.id)
    store.close()
    assert "keys: required (virtual keys were created" in _banner(config)
