"""Shared pieces of the budget and rate-limit tests: an isolated Redis namespace, a webhook
receiver, and ways to read the counters back."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.services import ensure_redis

REDIS_DB = 12
"""The budget tests' Redis database; each test also has a key prefix of its own."""


def redis_namespace() -> tuple[str, str]:
    """(the URL of the test database, a fresh key prefix)."""
    url = ensure_redis().rstrip("/").rsplit("/", 1)
    base = url[0] if url[-1].isdigit() else "/".join(url)
    return f"{base}/{REDIS_DB}", f"test:{secrets.token_hex(5)}:"


def clear_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class Webhook:
    """An HTTP server that records the JSON POSTed to it; ``fail_first`` answers 503 that many times."""

    def __init__(self, fail_first: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.attempts = 0
        self.fail_first = fail_first
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                hook.attempts += 1
                if hook.attempts <= hook.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                hook.events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def webhook(fail_first: int = 0) -> Iterator[Webhook]:
    hook = Webhook(fail_first)
    try:
        yield hook
    finally:
        hook.close()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
