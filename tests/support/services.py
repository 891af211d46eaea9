"""Real services for the tests: PostgreSQL (and later Redis), started here when none is running."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("THRIFTY_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _postgres_up(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def ensure_postgres() -> str:
    """A reachable PostgreSQL server: the configured one, or the machine's cluster started now."""
    url = postgres_admin_url()
    if _postgres_up(url):
        return url
    if shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir():
        for version in sorted(os.listdir("/etc/postgresql")):
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                check=False,
                capture_output=True,
            )
        for _ in range(50):
            if _postgres_up(url):
                return url
            time.sleep(0.2)
    raise RuntimeError(
        f"no PostgreSQL at {url} and none could be started; set THRIFTY_TEST_POSTGRES_URL to a server "
        "the tests may create databases on"
    )


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"


def _redis_up(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def ensure_redis() -> str:
    """A reachable Redis: the configured one, or a server started now (nothing kept on disk)."""
    url = os.environ.get("THRIFTY_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if _redis_up(url):
        return url
    if shutil.which("redis-server"):
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=False,
            capture_output=True,
        )
        for _ in range(50):
            if _redis_up(url):
                return url
            time.sleep(0.1)
    raise RuntimeError(f"no Redis at {url} and none could be started; set THRIFTY_TEST_REDIS_URL")
