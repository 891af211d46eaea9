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
