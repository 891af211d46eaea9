"""Bad input at the gateway: a 4xx in the client's own error shape, saying what was wrong; keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.support.gateway import RunningGateway, running_gateway
from thrifty.stores.keys import open_keys

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway(simulator_url: str, tmp_path: Path) -> Iterator[RunningGateway]:
    with running_gateway(simulator_url, tmp_path, server={"max_body_bytes": 4096}) as running:
        yield running


def post(gateway: RunningGateway, path: str, content: bytes, content_type: str = "application/json") -> httpx2.Response:
    return httpx2.post(f"{gateway.url}{path}", content=content, headers={"content-type": content_type})


def openai_error(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    assert "Traceback" not in response.text
    assert response.headers["x-thrifty-request-id"].startswith("req_")
    return dict(body["error"])


def anthropic_error(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert body["type"] == "error" and {"type", "message"} <= set(body["error"])
    assert "Traceback" not in response.text
    return dict(body["error"])


@pytest.mark.parametrize(
    ("content", "status", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"model": "gpt-4o", "messages": "hi"}', 400, "messages: expected an array"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', 400, "model"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}', 400, "max_tokens"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "UTF-8"),
        (b'{"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}', 404, "no-such-model"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "' + b"x" * 5000 + b'"}]}', 413, "limit"),
    ],
)
def test_bad_openai_requests(gateway: RunningGateway, content: bytes, status: int, says: str) -> None:
    response = post(gateway, "/v1/chat/completions", content)
    assert response.status_code == status
    assert says in openai_error(response)["message"]


@pytest.mark.parametrize(
    ("content", "status", "says"),
    [
        (b"{nope", 400, "not valid JSON"),
        (b'{"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}', 400, "max_tokens"),
        (
            b'{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}',
            400,
            "role",
        ),
        (b'{"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}', 404, "nope"),
    ],
)
def test_bad_anthropic_requests(gateway: RunningGateway, content: bytes, status: int, says: str) -> None:
    response = post(gateway, "/v1/messages", content)
    assert response.status_code == status
    assert says in anthropic_error(response)["message"]


def test_unsupported_content_type_and_method_and_path(gateway: RunningGateway) -> None:
    response = post(gateway, "/v1/chat/completions", b"model=gpt-4o", "application/x-www-form-urlencoded")
    assert response.status_code == 415 and "content type" in openai_error(response)["message"]
    assert httpx2.get(f"{gateway.url}/v1/chat/completions").status_code == 405
    missing = httpx2.get(f"{gateway.url}/v2/nothing")
    assert missing.status_code == 404 and "no route" in openai_error(missing)["message"]


def test_the_sdks_raise_their_own_exceptions(gateway: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x").chat.completions.create(model="x", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError):
        anthropic.Anthropic(base_url=gateway.url, api_key="x").messages.create(
            model="claude-haiku-4-5",
            max_tokens=5,
            messages=[{"role": "system", "content": "x"}],  # type: ignore[list-item]
        )


def test_bad_attribution_headers_are_refused(gateway: RunningGateway) -> None:
    response = httpx2.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HELLO},
        headers={"x-thrifty-user": "x" * 300},
    )
    assert response.status_code == 400 and "x-thrifty-user" in openai_error(response)["message"]


def test_once_a_key_exists_requests_need_one_and_it_carries_attribution(gateway: RunningGateway) -> None:
    store = open_keys(gateway.runtime.config.storage.ledger)
    info, secret = store.create(user="svc-user", team="payments", feature="fraud")
    store.close()
    gateway.runtime.keys.load()  # what the background refresh does within seconds
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    anonymous = httpx2.post(f"{gateway.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO})
    assert anonymous.status_code == 401
    good = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
    good.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=secret, max_retries=0)  # sent as x-api-key
    claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    records = gateway.records(2)
    assert {(r.user, r.team, r.feature, r.key_id) for r in records} == {("svc-user", "payments", "fraud", info.id)}
    assert all(secret not in str(r.to_row()) for r in records)


def test_a_revoked_key_stops_working(gateway: RunningGateway) -> None:
    store = open_keys(gateway.runtime.config.storage.ledger)
    keep, _ = store.create(user="a", team=None, feature=None)
    info, secret = store.create(user="b", team=None, feature=None)
    gateway.runtime.keys.load()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
    assert store.revoke(info.id)
    store.close()
    gateway.runtime.keys.load()
    time.sleep(0.01)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
    assert keep.active


def test_provider_keys_never_reach_the_ledger(
    simulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_OPENAI_KEY", "sk-very-secret-provider-key")
    providers = {
        "openai": {"kind": "openai", "base_url": f"{simulator_url}/v1", "api_key_env": "SIM_OPENAI_KEY"},
        "anthropic": {"kind": "anthropic", "base_url": simulator_url},
    }
    with running_gateway(simulator_url, tmp_path, providers=providers) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        (record,) = gateway.records(1)
    assert "sk-very-secret" not in str(record.to_row())
    journal = "".join(p.read_text() for p in (tmp_path / "journal").glob("*") if p.is_file())
    assert "sk-very-secret" not in journal


@pytest.mark.parametrize("role", [["user"], {"r": 1}, 5, None])
def test_a_role_of_the_wrong_type_is_a_400_not_a_500(gateway: RunningGateway, role: object) -> None:
    import orjson

    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": role, "content": "hi"}]})
    response = post(gateway, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert "messages[0].role" in openai_error(response)["message"]
