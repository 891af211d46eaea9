"""Batches survive a SIGKILL of the gateway (issue 10's done-means), on real processes: ``thrifty
serve`` killed between the upload and the create, and again while the provider is working on the
batch; restarted on the same files, every line gets exactly one result and one ledger row, and
the simulated provider was sent the batch once."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import yaml

from tests.support.processes import free_port, thrifty_process, wait_ready
from thrifty.stores.ledger import open_ledger

LINES = 6


def lines(tag: str) -> bytes:
    out = []
    for i in range(LINES):
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"{tag} question {i}?"}],
            "max_tokens": 20,
        }
        out.append(
            orjson.dumps({"custom_id": f"{tag}-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
        )
    return b"\n".join(out) + b"\n"


@contextmanager
def simulator(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "sim.yaml"
    config.write_text(yaml.safe_dump({"batch_completion_delay_s": 2.0}))
    port = free_port()
    log = tmp_path / "sim.log"
    process = thrifty_process("simulate", "--port", str(port), "--config", str(config), log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log, path="/_simulator/stats")
        yield url
    finally:
        process.terminate()
        process.wait(10)


class Gateway:
    def __init__(self, tmp_path: Path, upstream: str) -> None:
        self.home = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp_path / "gateway.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "storage": {
                        "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
                        "journal_dir": str(tmp_path / "journal"),
                    },
                    "providers": {"openai": {"kind": "openai", "base_url": f"{upstream}/v1"}},
                    "models": [{"name": "gpt-4o-mini", "provider": "openai"}],
                    "batch": {"poll_interval_s": 0.1, "lease_s": 2},
                }
            )
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> openai.OpenAI:
        self.starts += 1
        log = self.home / f"gateway-{self.starts}.log"
        self.process = thrifty_process("serve", "--config", str(self.config), "--port", str(self.port), log=log)
        wait_ready(self.url, self.process, log)
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="not-needed", max_retries=0)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def rows(self, batch_id: str) -> list[Any]:
        store = open_ledger(f"sqlite:///{self.home / 'ledger.db'}")
        try:
            return [r for r in store.records(limit=10_000) if r.details.get("batch_id") == batch_id]
        finally:
            store.close()


def wait_status(gpt: openai.OpenAI, batch_id: str, wanted: set[str], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = gpt.batches.retrieve(batch_id)
        if batch.status in wanted:
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status}"
        time.sleep(0.05)


def provider_batches(upstream: str, batch_id: str) -> list[dict[str, Any]]:
    listed = httpx2.get(f"{upstream}/v1/batches", params={"limit": 100}).json()["data"]
    return [b for b in listed if (b.get("metadata") or {}).get("thrifty_batch", "").startswith(batch_id)]


def check_once(gateway: Gateway, gpt: openai.OpenAI, upstream: str, batch_id: str, tag: str) -> None:
    batch = wait_status(gpt, batch_id, {"completed", "failed", "expired", "cancelled"})
    assert batch.status == "completed"
    assert batch.output_file_id is not None
    output = [orjson.loads(x) for x in gpt.files.content(batch.output_file_id).content.splitlines()]
    assert sorted(e["custom_id"] for e in output) == sorted(f"{tag}-{i}" for i in range(LINES))  # one result each
    deadline = time.monotonic() + 10
    while len(rows := gateway.rows(batch_id)) < LINES and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Counter(r.details["custom_id"] for r in rows) == Counter({f"{tag}-{i}": 1 for i in range(LINES)})
    assert all(r.batch and r.cost is not None and r.cost.total > 0 for r in rows)
    (sent,) = provider_batches(upstream, batch_id)  # the provider was sent the batch once...
    assert sent["request_counts"]["total"] == LINES  # ...with each line once


def test_sigkill_between_upload_and_create_then_restart(tmp_path: Path) -> None:
    with simulator(tmp_path) as upstream:
        gateway = Gateway(tmp_path, upstream)
        try:
            gpt = gateway.start()
            uploaded = gpt.files.create(file=("in.jsonl", io.BytesIO(lines("upload"))), purpose="batch")
            gateway.kill()
            gpt = gateway.start()
            assert gpt.files.retrieve(uploaded.id).bytes == len(lines("upload"))  # the upload survived
            created = gpt.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            check_once(gateway, gpt, upstream, created.id, "upload")
        finally:
            gateway.stop()


def test_sigkill_while_polling_then_restart(tmp_path: Path) -> None:
    with simulator(tmp_path) as upstream:
        gateway = Gateway(tmp_path, upstream)
        try:
            gpt = gateway.start()
            uploaded = gpt.files.create(file=("in.jsonl", io.BytesIO(lines("poll"))), purpose="batch")
            created = gpt.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            wait_status(gpt, created.id, {"in_progress"})  # at the provider, being worked on
            gateway.kill()
            assert gateway.rows(created.id) == []  # killed before any result came
            gpt = gateway.start()
            check_once(gateway, gpt, upstream, created.id, "poll")
            gateway.stop()
            gpt = gateway.start()  # and a third start records nothing again
            assert gpt.batches.retrieve(created.id).status == "completed"
            time.sleep(0.5)
            assert len(gateway.rows(created.id)) == LINES
        finally:
            gateway.stop()
