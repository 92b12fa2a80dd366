"""Rows that name a wallet with an organization refer to the pair, and the metadata indexes
hold only rows that have metadata (migration 0019)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

from tests.support.databases import alembic_config

ROOT = Path(__file__).resolve().parents[2]
BEFORE = "0018_batch_requests"
AFTER = "0019_composite_references"
"""After 0019 these references were foreign keys; migration 0029 checks them once a statement
instead (`tests/integration/test_references_by_statement.py`)."""


def _organization(conn: Connection) -> UUID:
    return conn.execute(
        text(
            "INSERT INTO organizations (name, default_currency) VALUES ('Org', 'USD') RETURNING id"
        )
    ).scalar_one()


def _wallet(conn: Connection, organization_id: UUID, metadata: str = "{}") -> UUID:
    return conn.execute(
        text(
            "INSERT INTO wallets (organization_id, type, currency, metadata)"
            " VALUES (:o, 'PRIMARY', 'USD', CAST(:m AS jsonb)) RETURNING id"
        ),
        {"o": organization_id, "m": metadata},
    ).scalar_one()


def _transfer(conn: Connection, org: UUID, src: UUID, dest_org: UUID, dst: UUID) -> UUID:
    return conn.execute(
        text(
            "INSERT INTO transactions (organization_id, destination_organization_id,"
            " idempotency_key, request_hash, kind, source_wallet_id, destination_wallet_id,"
            " amount, currency) VALUES (:o, :do, :k, 'h', 'TRANSFER', :s, :d, 1, 'USD') RETURNING id"
        ),
        {
            "o": org,
            "do": dest_org,
            "k": str(uuid.uuid4()),
            "s": src,
            "d": dst,
        },
    ).scalar_one()


def _entry(conn: Connection, transaction_id: UUID, wallet_id: UUID, org: UUID) -> None:
    conn.execute(
        text(
            "INSERT INTO ledger_entries (transaction_id, wallet_id, organization_id, direction,"
            " amount, currency, balance_after) VALUES (:t, :w, :o, 'DEBIT', 1, 'USD', -1)"
        ),
        {"t": transaction_id, "w": wallet_id, "o": org},
    )


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A connection whose writes are all rolled back: nothing is left for other tests."""
    with engine.connect() as connection, connection.begin() as outer:
        yield connection
        outer.rollback()


def test_a_transfer_naming_a_wallet_with_another_organization_is_refused(
    conn: Connection,
) -> None:
    acme, globex = _organization(conn), _organization(conn)
    alice, bob, gina = _wallet(conn, acme), _wallet(conn, acme), _wallet(conn, globex)
    for org, src, dest_org, dst in [
        (acme, gina, acme, bob),  # source is Globex's
        (acme, alice, acme, gina),  # destination is Globex's
        (acme, alice, globex, bob),  # destination is Acme's, named as Globex's
        (globex, alice, acme, bob),  # source is Acme's, named as Globex's
    ]:
        with pytest.raises(IntegrityError, match="fk_transactions_"), conn.begin_nested():
            _transfer(conn, org, src, dest_org, dst)
    assert _transfer(conn, acme, alice, globex, gina)


def test_an_entry_in_another_organizations_books_is_refused(conn: Connection) -> None:
    acme, globex = _organization(conn), _organization(conn)
    alice, bob = _wallet(conn, acme), _wallet(conn, acme)
    tx = _transfer(conn, acme, alice, acme, bob)
    for org in (globex, uuid.uuid4()):  # another organization's books; no organization
        with pytest.raises(IntegrityError, match="fk_ledger_entries_wallet"), conn.begin_nested():
            _entry(conn, tx, alice, org)
    _entry(conn, tx, alice, acme)


def test_a_referenced_wallet_cannot_move_to_another_organization(conn: Connection) -> None:
    acme, globex = _organization(conn), _organization(conn)
    alice, bob = _wallet(conn, acme), _wallet(conn, acme)
    _transfer(conn, acme, alice, acme, bob)
    with pytest.raises(IntegrityError, match="never change"), conn.begin_nested():
        conn.execute(
            text("UPDATE wallets SET organization_id = :g WHERE id = :w"), {"g": globex, "w": alice}
        )


def _foreign_keys(conn: Connection) -> set[tuple[str, str]]:
    rows = conn.execute(
        text(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'f' AND conrelid::regclass::text IN"
            " ('transactions', 'ledger_entries')"
        )
    )
    return {(r[0], r[1]) for r in rows}


def test_a_database_with_a_ledger_migrates_up_and_down(unmigrated_url: str) -> None:
    config = alembic_config(unmigrated_url)
    command.upgrade(config, BEFORE)
    engine = create_engine(unmigrated_url)
    try:
        with engine.begin() as conn:
            org = _organization(conn)
            alice, bob = _wallet(conn, org, '{"desk": "a"}'), _wallet(conn, org)
            tx = _transfer(conn, org, alice, org, bob)
            _entry(conn, tx, alice, org)
            old = _foreign_keys(conn)

        command.upgrade(config, AFTER)
        with engine.begin() as conn:
            new = _foreign_keys(conn)
            indexes = (
                conn.execute(
                    text(
                        "SELECT pg_get_indexdef(CAST(name AS regclass)) FROM unnest("
                        "ARRAY['ix_transactions_metadata', 'ix_wallets_metadata']) AS name"
                    )
                )
                .scalars()
                .all()
            )
        assert (
            "transactions",
            "FOREIGN KEY (source_wallet_id, organization_id)"
            " REFERENCES wallets(id, organization_id)",
        ) in new
        assert (
            "ledger_entries",
            "FOREIGN KEY (wallet_id, organization_id) REFERENCES wallets(id, organization_id)",
        ) in new
        assert not any("REFERENCES organizations" in d for _, d in new)
        assert all(i.endswith("WHERE (metadata <> '{}'::jsonb)") for i in indexes)

        command.downgrade(config, BEFORE)
        with engine.begin() as conn:
            assert _foreign_keys(conn) == old
        command.upgrade(config, "head")
    finally:
        engine.dispose()
