"""A large body is decoded, parsed and counted off the event loop: a small request that arrives
while a large one is being worked on is answered first, and the large one's input tokens reach
the pipeline counted (on the worker thread): no step counts them again on the loop."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx2
import orjson

from tests.support.gateway import running_gateway

SMALL = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 5}


def _large_body(messages: int = 6_000) -> bytes:
    """~5.5 MB of text in ``messages`` messages: 1.5 million tokens, seconds of work to parse and count."""
    message = {"role": "user", "content": " ".join(f"word{n % 997}" for n in range(125))}
    return orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 1, "messages": [message] * messages})


def _post_raw(port: int, body: bytes, sent: threading.Event) -> bytes:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head + body)
        sent.set()
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_small_request_is_answered_while_a_large_body_is_parsed_and_counted(
    simulator_url: str, tmp_path: Path
) -> None:
    with running_gateway(simulator_url, tmp_path, cache={"exact": {"enabled": False}}) as gateway:
        counted_on: list[str] = []
        counter = gateway.runtime.counter
        count_request = counter.count_request

        def spy(request, model=None):  # type: ignore[no-untyped-def]
            if len(request.messages) > 1000:
                counted_on.append(threading.current_thread().name)
            return count_request(request, model)

        counter.count_request = spy  # type: ignore[method-assign]
        finished: list[str] = []
        answers: dict[str, bytes] = {}
        sent = threading.Event()

        def large() -> None:
            answers["large"] = _post_raw(gateway.server.port, _large_body(), sent)
            finished.append("large")

        worker = threading.Thread(target=large)
        worker.start()
        assert sent.wait(60)  # the whole large body is with the gateway (sendall returned)
        with httpx2.Client(base_url=gateway.url, timeout=60) as client:
            small = client.post("/v1/chat/completions", json=SMALL)
        finished.append("small")
        worker.join(120)
        assert small.status_code == 200, small.text
        assert answers["large"].startswith(b"HTTP/1.1 "), answers["large"][:200]
        assert finished == ["small", "large"]
        # the large call was counted off the loop, before the pipeline saw it, and never again on it
        assert counted_on, "the large request was never counted"
        assert gateway.server.thread.name not in counted_on, counted_on
