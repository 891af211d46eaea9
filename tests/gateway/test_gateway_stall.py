"""One client cannot stall everyone: headers and bodies that trickle in are cut off with a 408,
connections past the per-client cap get a 429 at once, a request of too many messages gets a clear
413 before it is parsed, and the HTTP layer's own errors come back as JSON."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import openai
import orjson
import pytest

from tests.support.gateway import RunningGateway, running_gateway

SERVER = {
    "header_timeout_s": 1,
    "body_timeout_s": 1,
    "max_connections_per_client": 4,
    "max_messages": 5,
}


@pytest.fixture(scope="module")
def gateway(simulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    home: Path = tmp_path_factory.mktemp("stall")
    with running_gateway(simulator_url, home, server=SERVER) as running:
        yield running


def _connect(gateway: RunningGateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.server.port), timeout=20)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 20 s pass: a test failure)."""
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _trickle(sock: socket.socket, data: bytes, every_s: float = 0.3) -> None:
    """Send ``data`` a byte at a time until the server closes the connection."""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(every_s)
        if _closed(sock):
            return


def _closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def test_headers_that_trickle_in_are_cut_off_with_a_408(gateway: RunningGateway) -> None:
    sock = _connect(gateway)
    _trickle(sock, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40)
    answer = _answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert "server.header_timeout_s" in body["error"]["message"]


def test_a_body_that_trickles_in_is_cut_off_with_a_408_in_the_clients_shape(gateway: RunningGateway) -> None:
    sock = _connect(gateway)
    head = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    sock.sendall(head)
    _trickle(sock, b'{"model": "claude-haiku-4-5", "messages": [' + b" " * 400)
    answer = _answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["type"] == "error" and "server.body_timeout_s" in body["error"]["message"]


def test_connections_past_the_per_client_cap_get_a_429_at_once(gateway: RunningGateway) -> None:
    held = [_connect(gateway) for _ in range(SERVER["max_connections_per_client"])]
    try:
        time.sleep(0.1)  # the server has accepted them all
        extra = _connect(gateway)
        answer = _answer(extra)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
        assert b"server.max_connections_per_client" in answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.1)
    assert httpx2.get(f"{gateway.url}/healthz").status_code == 200  # their slots are free again


def test_too_many_messages_get_a_413_before_they_are_parsed(gateway: RunningGateway) -> None:
    messages = [{"role": "user", "content": "one"}] * 6
    with pytest.raises(openai.APIStatusError) as refused:
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0).chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=5,
        )
    assert refused.value.status_code == 413 and "server.max_messages" in str(refused.value.body)
    with pytest.raises(anthropic.APIStatusError) as refused_too:
        anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0).messages.create(
            model="claude-haiku-4-5",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=5,
        )
    assert refused_too.value.status_code == 413


def test_a_malformed_request_line_gets_a_json_400(gateway: RunningGateway) -> None:
    sock = _connect(gateway)
    sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    answer = _answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400")
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["message"]


def test_large_bodies_are_parsed_off_the_loop_and_still_served(simulator_url: str, tmp_path: Path) -> None:
    with running_gateway(simulator_url, tmp_path, server={"offload_bytes": 1024}) as gateway:
        text = "word " * 400
        reply = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": text}],
            max_tokens=5,
        )
        assert reply.choices[0].message.content


def test_connections_past_the_total_cap_get_a_429_at_once(simulator_url: str, tmp_path: Path) -> None:
    server = {"max_connections": 3, "max_connections_per_client": 100}
    with running_gateway(simulator_url, tmp_path, server=server) as gateway:
        held = [_connect(gateway) for _ in range(3)]
        try:
            for sock in held:  # each one answered: the server holds all three
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            extra = _connect(gateway)
            answer = _answer(extra)
            extra.close()
            assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
            body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
            assert "server.max_connections" in body["error"]["message"]
        finally:
            for sock in held:
                sock.close()
        for _ in range(50):  # the slots are freed as the server sees the connections close
            if httpx2.get(f"{gateway.url}/healthz").status_code == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the gateway still refuses after its connections closed")
