"""The service role cannot switch off, rewrite or skip the database's own guards.

Every service process connects as `vaultcraft_service` (migration 0008); these tests run
the statements a compromised service might try, as that role, against a real database.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.transfers.posting import post_batch
from tests.support.ledger import create_book, insert_intents


def _refused(engine: Engine, statement: str, **params: object) -> str:
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(text(statement), params)
    return str(caught.value.orig)


@pytest.fixture(scope="module")
def posted(engine: Engine, service_engine: Engine) -> dict[str, object]:
    """A small book posted by the service role: two wallets with history."""
    book = create_book(service_engine, 2)
    a, b = book.wallet_ids
    with service_engine.begin() as conn:
        insert_intents(conn, book, [(book.system_wallet_id, a, 100), (a, b, 30)])
    with service_engine.begin() as conn:
        assert post_batch(conn, 100).completed == 2
    with engine.connect() as conn:
        balances = dict(
            conn.execute(
                text("SELECT id, balance FROM wallets WHERE id = ANY(:ids)"), {"ids": [a, b]}
            ).all()
        )
    assert balances == {a: 70, b: 30}
    return {"a": a, "b": b, "org": book.organization_id}


def test_services_connect_as_a_role_that_owns_nothing(service_engine: Engine) -> None:
    with service_engine.connect() as conn:
        user, superuser = conn.execute(
            text("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        ).one()
        owned = conn.scalar(
            text(
                "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles"
                " WHERE rolname = current_user)"
            )
        )
    assert (user, superuser, owned) == ("vaultcraft_service", False, 0)


def test_replica_mode_is_refused(service_engine: Engine) -> None:
    message = _refused(service_engine, "SET LOCAL session_replication_role = replica")
    assert "permission denied" in message


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only",
        "ALTER TABLE audit_logs DISABLE TRIGGER ALL",
        "ALTER TABLE wallets DISABLE TRIGGER wallets_balance_is_history",
        "DROP TRIGGER wallets_balance_is_history ON wallets",
        "ALTER TABLE wallets DROP CONSTRAINT wallets_pkey",
        "DROP TABLE audit_logs",
        "TRUNCATE ledger_entries CASCADE",
        "TRUNCATE audit_logs CASCADE",
        "TRUNCATE wallets CASCADE",
        "UPDATE alembic_version SET version_num = 'x'",
    ],
)
def test_schema_changes_are_refused(service_engine: Engine, statement: str) -> None:
    message = _refused(service_engine, statement)
    assert "must be owner" in message or "permission denied" in message


def test_ledger_entries_cannot_be_edited_or_deleted(
    service_engine: Engine, posted: dict[str, object]
) -> None:
    for statement in (
        "UPDATE ledger_entries SET amount = amount + 1 WHERE wallet_id = :w",
        "DELETE FROM ledger_entries WHERE wallet_id = :w",
    ):
        assert "permission denied" in _refused(service_engine, statement, w=posted["a"])


def test_audit_rows_cannot_be_edited_or_deleted(service_engine: Engine) -> None:
    with service_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_logs (action, resource_type, details)"
                " VALUES ('test.role', 'test', '{}')"
            )
        )
    for statement in (
        "UPDATE audit_logs SET action = 'forged' WHERE action = 'test.role'",
        "DELETE FROM audit_logs WHERE action = 'test.role'",
        "UPDATE audit_seals SET hash = repeat('0', 64)",
        "DELETE FROM audit_seals",
        "DELETE FROM audit_seal_cursor",
        "INSERT INTO audit_logs (action, txid) VALUES ('test.role', NULL)",  # never sealed
    ):
        assert "permission denied" in _refused(service_engine, statement)


def test_a_balance_cannot_leave_its_ledger(
    service_engine: Engine, posted: dict[str, object]
) -> None:
    for statement in (
        "UPDATE wallets SET balance = balance + 1 WHERE id = :w",
        "UPDATE wallets SET balance = 0 WHERE organization_id = :o",
    ):
        message = _refused(service_engine, statement, w=posted["a"], o=posted["org"])
        assert "newest ledger entry" in message


def test_a_wallet_cannot_open_with_money(service_engine: Engine, posted: dict[str, object]) -> None:
    message = _refused(
        service_engine,
        "INSERT INTO wallets (organization_id, type, currency, balance)"
        " VALUES (:o, 'PRIMARY', 'USD', 1000000)",
        o=posted["org"],
    )
    assert "newest ledger entry" in message


def test_other_wallet_columns_still_change(
    service_engine: Engine, posted: dict[str, object]
) -> None:
    with service_engine.begin() as conn:
        changed = conn.execute(
            text("UPDATE wallets SET name = 'renamed', updated_at = now() WHERE id = :w"),
            {"w": posted["b"]},
        ).rowcount
    assert changed == 1
