"""Creating the service role is idempotent and safe when two migrations race.

Roles are cluster-wide: two test sessions (or deploys) migrating fresh databases on one
server at the same moment both find the role missing and both try to create it. The
second must wait for the first and then carry on, not fail. The migration's statement is
run here under a throwaway role name, so the shared `vaultcraft_service` is untouched.
"""

from __future__ import annotations

import importlib.util
import secrets
import threading
from pathlib import Path

import psycopg

from runtime.settings import to_psycopg_url

MIGRATION = Path(__file__).resolve().parents[2] / "migrations/versions/0007_service_role.py"


def _create_role_statement(name: str) -> str:
    spec = importlib.util.spec_from_file_location("service_role_migration", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.CREATE_ROLE).replace(module.ROLE, name)


def test_two_migrations_creating_the_role_at_once_both_succeed(database_url: str) -> None:
    name = f"vaultcraft_race_{secrets.token_hex(4)}"
    statement = _create_role_statement(name)
    url = to_psycopg_url(database_url)
    errors: list[BaseException] = []
    try:
        with psycopg.connect(url) as first:
            first.execute(statement)  # created, not yet committed

            def second() -> None:
                try:
                    with psycopg.connect(url) as conn:
                        conn.execute(statement)  # waits for `first`, then finds it
                        conn.commit()
                except BaseException as exc:  # reported by the assertion below
                    errors.append(exc)

            racer = threading.Thread(target=second)
            racer.start()
            racer.join(timeout=1.0)
            assert racer.is_alive()  # blocked on the first creation
            first.commit()
            racer.join(timeout=30)
        assert errors == []
        with psycopg.connect(url) as conn:
            conn.execute(statement)  # and once more, with the role long there
            found = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,))
            assert found.fetchone() == (1,)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {name}")
