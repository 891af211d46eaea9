"""Oversized request headers: httptools sets no limit (a 2 MB header was read whole), so the gateway
counts the request line and headers as they arrive and past ``server.max_header_bytes`` answers 431
in the error shape of the API the request line names, before the app or any provider sees it; the
connection is then closed. The parser's own 400s come back in that shape too."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest

from tests.support.gateway import RunningGateway, running_gateway

LIMIT = 16 * 1024
BODY = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
HELLO: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(simulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(simulator_url, tmp_path_factory.mktemp("headers"), server={"max_header_bytes": LIMIT}) as gw:
        yield gw


def upstream_calls(gateway: RunningGateway) -> int:
    return int(httpx2.get(f"{gateway.simulator_url}/_simulator/stats").json()["total"])


def exchange(gateway: RunningGateway, path: str, extra_headers: bytes) -> bytes:
    """One raw request; everything the server sends until it closes the connection."""
    head = (
        f"POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\n"
        f"content-length: {len(BODY)}\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.server.port), timeout=20) as sock:
        with contextlib.suppress(OSError):  # the server may answer before reading it all: read on
            sock.sendall(head + extra_headers + b"\r\n" + BODY)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(answer: bytes) -> tuple[int, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split(b" ", 2)[1]), orjson.loads(body)


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        (b"x-big: " + b"a" * (LIMIT + 100) + b"\r\n", "header x-big"),  # one header past the limit
        (b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 90) for i in range(LIMIT // 90)), "header x-h"),  # many small ones
        (b"x-huge: " + b"a" * 3_000_000 + b"\r\n", ""),  # still arriving when the limit is passed
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_headers_past_the_limit_get_a_431_in_the_clients_shape(
    gateway: RunningGateway, headers: bytes, named: str, path: str
) -> None:
    before = upstream_calls(gateway)
    status, body = status_and_body(exchange(gateway, path, headers))
    assert status == 431
    if path == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    message = body["error"]["message"]
    assert message.startswith(named) and f"more than {LIMIT:,} bytes (server.max_header_bytes)" in message, message
    assert upstream_calls(gateway) == before


def test_headers_within_the_limit_are_served(gateway: RunningGateway) -> None:
    status, body = status_and_body(
        exchange(gateway, "/v1/chat/completions", b"x-big: " + b"a" * (LIMIT - 500) + b"\r\n")
    )
    assert status == 200, body
    # a kept-alive connection: the second request's headers are counted afresh
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + b"content-length: %d\r\nx-big: %s\r\n\r\n" % (len(BODY), b"a" * (LIMIT // 2))
        + BODY
    )
    with socket.create_connection(("127.0.0.1", gateway.server.port), timeout=20) as sock:
        for _ in range(3):
            sock.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_the_sdks_get_the_431_as_an_error_they_can_read(gateway: RunningGateway) -> None:
    big = {"x-big": "a" * (LIMIT * 2)}
    gpt = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, default_headers=big)
    with pytest.raises(openai.APIStatusError) as refused:
        gpt.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)
    assert refused.value.status_code == 431
    assert "server.max_header_bytes" in refused.value.message
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0, default_headers=big)
    with pytest.raises(anthropic.APIStatusError) as refused_claude:
        claude.messages.create(model="claude-haiku-4-5", messages=HELLO, max_tokens=5)
    assert refused_claude.value.status_code == 431
    body: Any = refused_claude.value.body
    assert body["type"] == "error" and "server.max_header_bytes" in body["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_header_the_parser_refuses_gets_a_400_in_the_clients_shape(gateway: RunningGateway, path: str) -> None:
    status, body = status_and_body(exchange(gateway, path, b"x-bad: \x01\x02\r\n"))
    assert status == 400
    assert body["error"]["message"]
    assert ("type" in body and body["type"] == "error") == (path == "/v1/messages")
