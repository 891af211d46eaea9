"""Logs (issue 14.10): one access line per request with what it cost, never the prompt or a key;
a warning for every retry, fallback and upstream error; and a JSON format for log pipelines."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.cli.test_cli_gateway import free_port
from tests.support.gateway import RunningGateway
from tests.support.processes import wait_ready
from thrifty.web.logfmt import JsonFormatter

SECRET_PROMPT = "the launch code is swordfish-4471"
ASK = [{"role": "user", "content": f"Remember this: {SECRET_PROMPT}."}]


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-client-secret-0000", max_retries=0)


def _access(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.access for r in caplog.records if r.name == "thrifty.access"]  # type: ignore[attr-defined]


def _wait_for(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(_access(caplog)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return _access(caplog)


def test_each_request_gets_one_access_line_with_its_cost_and_no_prompt(
    gateway: RunningGateway, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thrifty")
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=ASK, max_tokens=20, extra_headers={"x-thrifty-feature": "notes"}
    )
    with client.chat.completions.create(model="claude-haiku-4-5", messages=ASK, max_tokens=20, stream=True) as stream:
        for _ in stream:
            pass
    httpx2.get(f"{gateway.url}/healthz")  # probes are not logged
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=ASK, max_tokens=5)
    lines = _wait_for(caplog, 3)
    assert len(lines) == 3
    whole, streamed, missing = lines
    records = {r.requested_model: r for r in gateway.records(2)}
    assert whole["request_id"] == raw.headers["x-thrifty-request-id"]
    assert whole["status"] == 200 and whole["model"] == "gpt-4o" and whole["served_model"] == "gpt-4o"
    assert whole["cache"] == records["gpt-4o"].cache_status and whole["feature"] == "notes" and whole["latency_ms"] > 0
    cost = records["gpt-4o"].cost
    assert cost is not None and Decimal(whole["cost_usd"]) == cost.total > 0
    assert streamed["stream"] is True and streamed["status"] == 200
    streamed_cost = records["claude-haiku-4-5"].cost
    assert streamed_cost is not None and Decimal(streamed["cost_usd"]) == streamed_cost.total > 0
    assert missing["status"] == 404 and missing["model"] == "no-such-model" and "cost_usd" not in missing
    text = "\n".join(r.getMessage() for r in caplog.records) + json.dumps(lines)
    assert "swordfish" not in text and "sk-client-secret" not in text
    assert any(r.getMessage().startswith("POST /v1/chat/completions 200 request_id=") for r in caplog.records)


def test_retries_fallbacks_and_upstream_errors_are_warned(
    gateway: RunningGateway, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thrifty")
    gateway.fault("gpt-4o", "500", times=3)  # three failed attempts, then the fallback answers
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=ASK, max_tokens=10)
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    gateway.fault("gpt-4o-mini", "503", times=3)  # no fallback: the client gets the 503
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=10)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    rid = raw.headers["x-thrifty-request-id"]
    assert sum(f"call {rid}: gpt-4o: upstream answered 500; retry" in w for w in warnings) == 2
    assert any(f"call {rid}: gpt-4o: upstream answered 500; falling back to gpt-4o-mini" in w for w in warnings)
    assert any("gpt-4o-mini: upstream answered 503; no model left to try, answering 503" in w for w in warnings)
    statuses = [line["status"] for line in _wait_for(caplog, 2)]
    assert statuses == [200, 503]


def test_json_lines_carry_the_access_fields_at_the_top_level(
    gateway: RunningGateway, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thrifty")
    client.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=10)
    _wait_for(caplog, 1)
    (record,) = [r for r in caplog.records if r.name == "thrifty.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info" and line["logger"] == "thrifty.access"
    assert line["status"] == 200 and line["model"] == "gpt-4o-mini" and Decimal(line["cost_usd"]) > 0
    assert line["ts"].endswith("+00:00")


def test_serve_with_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "THRIFTY_HOME": str(tmp_path / "home"), "THRIFTY_LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "thrifty.cli.main", "serve", "--demo", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stderr=output)
        try:
            wait_ready(f"http://127.0.0.1:{port}", process, log)
            demo = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo", max_retries=0)
            demo.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=10)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    stderr = log.read_text()
    logged = [line for line in stderr.splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in logged]
    access = [p for p in parsed if p["logger"] == "thrifty.access"]
    assert len(access) == 1 and access[0]["status"] == 200 and access[0]["path"] == "/v1/chat/completions"
    # everything else is the startup banner (plain lines by design) or JSON: no uvicorn text lines
    others = [line for line in stderr.splitlines() if not line.startswith("{")]
    assert all(not line.startswith(("INFO", "WARNING", "ERROR")) for line in others), others
    assert "swordfish" not in stderr


def test_no_access_log_means_no_line_and_no_watching(
    gateway: RunningGateway, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thrifty")
    logging.getLogger("thrifty.access").setLevel(logging.WARNING)  # what --no-access-log sets
    try:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ASK, max_tokens=10)
    finally:
        logging.getLogger("thrifty.access").setLevel(logging.NOTSET)
    assert raw.headers["x-thrifty-cost-usd"]
    gateway.records(1)
    assert _access(caplog) == []
