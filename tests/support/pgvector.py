"""A real PostgreSQL with pgvector for the semantic cache's tests, from the ``pgserver`` package
(PostgreSQL and pgvector in a wheel: Debian's PostgreSQL here has no pgvector). Started once per
test session in a temporary directory and stopped at the end.

Use it by importing the fixture into a test module: ``from tests.support.pgvector import pgvector_url``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[str]:
    """The URL of a PostgreSQL server with the vector extension available."""
    configured = os.environ.get("THRIFTY_TEST_PGVECTOR_URL")
    if configured:
        yield configured
        return
    import pgserver  # a dev dependency: never skipped, a missing install fails the tests

    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    data = Path(tempfile.mkdtemp(prefix="thrifty-pgvector-"))
    server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def pgvector_url(pgvector_server: str) -> Iterator[str]:
    """A fresh database on the pgvector server for one test, dropped afterwards."""
    import psycopg

    name = f"thrifty_vec_{secrets.token_hex(6)}"
    with psycopg.connect(pgvector_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    base, _, query = pgvector_server.partition("?")
    root = base.rsplit("/", 1)[0]
    url = f"{root}/{name}" + (f"?{query}" if query else "")
    yield url
    with psycopg.connect(pgvector_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
