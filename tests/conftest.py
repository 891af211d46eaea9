from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.services import ensure_postgres

if TYPE_CHECKING:
    import anthropic
    import openai

    from tests.support.gateway import RunningGateway


@pytest.fixture(scope="session")
def postgres_server() -> str:
    return ensure_postgres()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    import psycopg

    name = f"thrifty_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    base, _, _ = postgres_server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """The simulated upstream, on loopback, for the whole session."""
    from tests.support.servers import ServerThread
    from thrifty.simulator import create_app

    server = ServerThread(create_app()).start()
    yield server.url
    server.stop()


# The end-to-end tests' usual parts; a module that needs a gateway configured otherwise defines its own.


@pytest.fixture
def gateway(simulator_url: str, tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway with the test models (tests.support.gateway) in front of the simulated upstream;
    the faults a test armed in the (shared) simulator are cleared after it."""
    import httpx2

    from tests.support.gateway import running_gateway

    with running_gateway(simulator_url, tmp_path) as running:
        yield running
    httpx2.delete(f"{simulator_url}/_simulator/faults")


@pytest.fixture
def gpt(gateway: RunningGateway) -> openai.OpenAI:
    """The official OpenAI SDK, pointed at the gateway."""
    import openai

    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-needed", max_retries=0)


@pytest.fixture
def claude(gateway: RunningGateway) -> anthropic.Anthropic:
    """The official Anthropic SDK, pointed at the gateway."""
    import anthropic

    return anthropic.Anthropic(base_url=gateway.url, api_key="not-needed", max_retries=0)
