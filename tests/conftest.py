from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.services import ensure_postgres


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
