"""The embedded PostgreSQL can be stopped and started again by the same process."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from runtime.embedded import ensure_postgres, stop_postgres
from tests.support.databases import private_postgres_dir


def test_stop_then_ensure_starts_the_server_again(test_data_dir: Path) -> None:
    """A cached server handle must not hand back the URL of a stopped server."""
    data_dir = private_postgres_dir(test_data_dir / "restart")
    try:
        url = ensure_postgres(data_dir)
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE survives (n int)")
            conn.execute("INSERT INTO survives VALUES (1)")
        stop_postgres(data_dir)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2).close()
        assert ensure_postgres(data_dir) == url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT n FROM survives").fetchall() == [(1,)]
    finally:
        stop_postgres(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
