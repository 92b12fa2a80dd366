"""A database of a test's own, for tests that read or count over the whole database.

Reconciliation, the invariant checker and the metrics tests count every row there is;
rows other tests leave in the session database would blur their numbers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from vaultcraft.settings import to_psycopg_url, to_sqlalchemy_url

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def fresh_database(server_url: str, prefix: str = "vaultcraft_own") -> Iterator[str]:
    """Create a database on the server of `server_url`, migrate it to head, drop it after."""
    url = make_url(to_sqlalchemy_url(server_url))
    admin = to_psycopg_url(url.set(database="postgres").render_as_string(hide_password=False))
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    own = url.set(database=name).render_as_string(hide_password=False)
    try:
        config = Config(str(ROOT / "alembic.ini"))
        config.set_main_option("script_location", str(ROOT / "migrations"))
        config.set_main_option("sqlalchemy.url", own.replace("%", "%%"))
        command.upgrade(config, "head")
        yield own
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
