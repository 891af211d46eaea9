"""A gateway in front of the simulated upstream, both on loopback, for end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2

from tests.support.servers import ServerThread
from thrifty.config.gateway import GatewayConfig
from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing import Catalogue, PriceBook
from thrifty.core.tokens.encodings import Encodings
from thrifty.core.usage import Usage
from thrifty.gateway.app import Gateway
from thrifty.gateway.runtime import Runtime
from thrifty.stores.ledger import open_ledger
from thrifty.web.guard import uvicorn_config

MODELS: list[dict[str, Any]] = [
    {"name": "gpt-4o", "provider": "openai", "fallbacks": ["gpt-4o-mini"]},
    {"name": "gpt-4o-mini", "provider": "openai"},
    {"name": "claude-sonnet-4-5", "provider": "anthropic", "fallbacks": ["claude-haiku-4-5"]},
    {"name": "claude-haiku-4-5", "provider": "anthropic"},
    {"name": "text-embedding-3-small", "provider": "openai"},
    # A model with a tiny window, to exercise the larger-context fallback.
    {
        "name": "tiny-window",
        "provider": "openai",
        "upstream_model": "gpt-4o-mini",
        "context_window": 60,
        "fallbacks": ["gpt-4o-mini"],
    },
]


def gateway_config(simulator_url: str, home: Path, **overrides: Any) -> GatewayConfig:
    document: dict[str, Any] = {
        "storage": {"ledger": f"sqlite:///{home / 'ledger.db'}", "journal_dir": str(home / "journal")},
        "retry": {"attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "attempt_timeout_s": 10},
        "providers": {
            "openai": {"kind": "openai", "base_url": f"{simulator_url}/v1"},
            "anthropic": {"kind": "anthropic", "base_url": simulator_url},
        },
        "models": MODELS,
    }
    document.update(overrides)
    return GatewayConfig.model_validate(document)


class RunningGateway:
    def __init__(self, runtime: Runtime, server: ServerThread, simulator_url: str) -> None:
        self.runtime = runtime
        self.server = server
        self.url = server.url
        self.simulator_url = simulator_url

    def records(self, expected: int, timeout: float = 10.0) -> list[LedgerRecord]:
        """The ledger once it holds ``expected`` rows (oldest first)."""
        deadline = time.monotonic() + timeout
        store = open_ledger(self.runtime.config.storage.ledger)
        try:
            while True:
                self.runtime.writer.flush(timeout=1.0)
                rows = store.records(limit=1000)
                if len(rows) >= expected or time.monotonic() > deadline:
                    return sorted(rows, key=lambda r: r.id)
                time.sleep(0.05)
        finally:
            store.close()

    def fault(self, model: str, fault: str, times: int = 1) -> None:
        response = httpx2.post(
            f"{self.simulator_url}/_simulator/faults", json={"model": model, "fault": fault, "times": times}
        )
        assert response.status_code in (200, 201), response.text


_SHARED: dict[str, Any] = {}


def shared_parts() -> tuple[Catalogue, Encodings]:
    """One catalogue and one set of vocabularies for every test gateway (both are read-only)."""
    if not _SHARED:
        _SHARED["catalogue"] = Catalogue()
        _SHARED["encodings"] = Encodings()
    return _SHARED["catalogue"], _SHARED["encodings"]


@contextmanager
def running_gateway(simulator_url: str, home: Path, **overrides: Any) -> Iterator[RunningGateway]:
    config = gateway_config(simulator_url, home, **overrides)
    catalogue, encodings = shared_parts()
    runtime = Runtime.from_config(config, home, catalogue=catalogue, encodings=encodings)
    app = Gateway(runtime)
    server = ServerThread(app, uvicorn_config(app, config.server)).start()  # served as thrifty serve does
    try:
        yield RunningGateway(runtime, server, simulator_url)
    finally:
        server.stop()


def expected_cost(usage: Usage, model: str, record: LedgerRecord, provider: str | None = None) -> Decimal:
    """The exact price of ``usage``, computed independently of the gateway's own price book."""
    catalogue, _ = shared_parts()
    return PriceBook(catalogue=catalogue).price(usage, model, provider=provider, at=record.ts).cost.total
