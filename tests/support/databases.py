"""Fresh, migrated databases on a PostgreSQL server, for tests that need one of their own.

The session's `database_url` fixture uses these; so do tests whose runs would leave the
shared database unsound on purpose (deliberately broken posting code) or that own their
server (the chaos run restarts it).
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from runtime.settings import to_psycopg_url, to_sqlalchemy_url

ROOT = Path(__file__).resolve().parent.parent.parent


def _admin_url(server_url: str) -> str:
    url = make_url(to_sqlalchemy_url(server_url)).set(database="postgres")
    return to_psycopg_url(url.render_as_string(hide_password=False))


def alembic_config(url: str) -> Config:
    """The project's Alembic configuration, aimed at the database of `url`."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def create_empty_database(server_url: str, prefix: str) -> str:
    """Create a new database, unmigrated, on the server of `server_url`; return its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(_admin_url(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(to_sqlalchemy_url(server_url)).set(database=name)
    return url.render_as_string(hide_password=False)


def create_migrated_database(server_url: str, prefix: str = "vaultcraft_test") -> str:
    """Create a new database on the server of `server_url`, migrate it to head, return its URL."""
    rendered = create_empty_database(server_url, prefix)
    command.upgrade(alembic_config(rendered), "head")
    return rendered


@contextmanager
def fresh_database(server_url: str, prefix: str = "vaultcraft_own") -> Iterator[str]:
    """A migrated database for the `with` block alone, dropped after it.

    For tests that count every row there is (metrics, logs, reconciliation): rows other
    tests leave in the session database would blur their numbers.
    """
    url = create_migrated_database(server_url, prefix)
    try:
        yield url
    finally:
        drop_database(url)


@contextmanager
def fresh_engine(
    server_url: str, prefix: str, pool_size: int = 2, max_overflow: int = 10
) -> Iterator[Engine]:
    """An engine on a `fresh_database` of its own, for the `with` block alone."""
    with fresh_database(server_url, prefix) as url:
        engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def clone_database(template_url: str, prefix: str) -> Iterator[str]:
    """A copy of the migrated database at `template_url` for the `with` block, then dropped.

    Cloning is a file copy on the server: far faster than migrating a new database, for
    tests that each want a ledger of their own.
    """
    template = make_url(to_sqlalchemy_url(template_url)).database
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(_admin_url(template_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = make_url(to_sqlalchemy_url(template_url)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop_database(url.render_as_string(hide_password=False))


def drop_database(url: str) -> None:
    name = make_url(to_sqlalchemy_url(url)).database
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def private_postgres_dir(parent: Path) -> Path:
    """A new directory for an embedded server that the test alone starts, stops and restarts.

    Readable by others: when tests run as root, pgserver runs PostgreSQL as an unprivileged
    user, which must reach its data directory inside this one.
    """
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="pg-", dir=parent))
    path.chmod(0o755)
    return path
