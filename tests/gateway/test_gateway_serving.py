"""The app ``thrifty serve`` runs around the gateway (``gateway.serving``), in process: ``/readyz``
while draining, the worker header, and the admin reload route's refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.support.gateway import gateway_config, shared_parts
from tests.support.servers import ServerThread
from thrifty.gateway.runtime import Runtime
from thrifty.gateway.serving import Serving
from thrifty.web.guard import uvicorn_config


@pytest.fixture
def serving(simulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Serving, str]]:
    monkeypatch.setenv("THRIFTY_TEST_SERVING_ADMIN", "admin-secret")
    config = gateway_config(simulator_url, tmp_path, admin={"token_env": "THRIFTY_TEST_SERVING_ADMIN"})
    catalogue, encodings = shared_parts()
    app = Serving(
        Runtime.from_config(config, tmp_path, catalogue=catalogue, encodings=encodings), None, worker_header=True
    )
    server = ServerThread(app, uvicorn_config(app, config.server)).start()
    try:
        yield app, server.url
    finally:
        server.stop()


def test_readyz_answers_503_once_draining_and_every_answer_names_its_worker(serving: tuple[Serving, str]) -> None:
    app, url = serving
    ready = httpx2.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.headers["x-thrifty-worker"].isdigit()
    app.drain()
    draining = httpx2.get(f"{url}/readyz")
    assert draining.status_code == 503 and "draining" in draining.json()["checks"]
    assert httpx2.get(f"{url}/healthz").status_code == 200  # alive, just not taking new work


def test_admin_reload_needs_the_token_and_post_and_a_config_file(serving: tuple[Serving, str]) -> None:
    _, url = serving
    assert httpx2.post(f"{url}/admin/reload").status_code == 401
    token = {"authorization": "Bearer admin-secret"}
    assert httpx2.get(f"{url}/admin/reload", headers=token).status_code == 405
    without_file = httpx2.post(f"{url}/admin/reload", headers=token)  # built in process: no file behind it
    assert without_file.status_code == 422
    assert "no config file" in without_file.json()["error"]["problems"][0]
