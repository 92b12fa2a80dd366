"""References the hot tables check once a statement (migration 0029), against a real database.

Every row a transfer writes that names a wallet, transaction, organization or user is
refused when that row does not exist, as a foreign key would refuse it (SQLSTATE 23503,
the same constraint name); a named row cannot be deleted, and keys never change. The
statements run as the service role, which is what every service process connects as. The
module has a database of its own: it leaves PENDING transfers that a posting batch of
another test would claim.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from alembic import command
from psycopg import errors
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.transfers.posting import post_batch
from runtime.settings import service_url, to_psycopg_url, to_sqlalchemy_url
from tests.support.databases import alembic_config, fresh_database
from tests.support.ledger import Book, create_book, insert_intents

BEFORE = "0028_wallet_day_counts"

INSERT_TRANSFER = """
    INSERT INTO transactions (organization_id, destination_organization_id, idempotency_key,
        request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency,
        created_by, reverses_transaction_id)
    VALUES (:org, :org, gen_random_uuid()::text, repeat('0', 64), 'TRANSFER', :source,
            :destination, 1, 'USD', :author, :reverses)
"""
INSERT_ENTRY = """
    INSERT INTO ledger_entries (transaction_id, wallet_id, organization_id, direction, amount,
        currency, balance_after)
    VALUES (:transaction, :wallet, :org, 'CREDIT', 1, 'USD', 1)
"""
INSERT_EVENT = (
    "INSERT INTO outbox (organization_id, type, data) VALUES (:org, 'transaction.completed', '{}')"
)
INSERT_AUDIT = "INSERT INTO audit_logs (organization_id, action) VALUES (:org, 'test.reference')"


@pytest.fixture(scope="module")
def database_url(service_urls: tuple[str, str]) -> Iterator[str]:
    with fresh_database(service_urls[0], "vaultcraft_references") as url:
        yield url


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    owner = create_engine(database_url, pool_size=2)
    yield owner
    owner.dispose()


@pytest.fixture(scope="module")
def service_engine(database_url: str) -> Iterator[Engine]:
    service = create_engine(to_sqlalchemy_url(service_url(database_url)), pool_size=2)
    yield service
    service.dispose()


@pytest.fixture(scope="module")
def book(service_engine: Engine) -> Book:
    """Two wallets with one posted transfer between them, and its entries."""
    book = create_book(service_engine, 2)
    with service_engine.begin() as conn:
        insert_intents(conn, book, [(book.system_wallet_id, book.wallet_ids[0], 100)])
    with service_engine.begin() as conn:
        assert post_batch(conn, 10).completed == 1
    return book


@pytest.fixture(scope="module")
def posted(service_engine: Engine, book: Book) -> uuid.UUID:
    with service_engine.connect() as conn:
        return conn.execute(
            text("SELECT id FROM transactions WHERE organization_id = :o"),
            {"o": book.organization_id},
        ).scalar_one()


def _sqlstate_and_constraint(engine: Engine, statement: str, **params: object) -> tuple[str, str]:
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(text(statement), params)
    diag = caught.value.orig.diag  # type: ignore[union-attr]
    return diag.sqlstate or "", diag.constraint_name or ""


def _count(engine: Engine, statement: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(statement), params).scalar_one())


def _transfer(book: Book, **changes: object) -> dict[str, object]:
    return {
        "org": book.organization_id,
        "source": book.wallet_ids[0],
        "destination": book.wallet_ids[1],
        "author": None,
        "reverses": None,
        **changes,
    }


MISSING = uuid.UUID(int=7)


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"source": MISSING}, "fk_transactions_source_wallet_id_wallets"),
        ({"destination": MISSING}, "fk_transactions_destination_wallet_id_wallets"),
        ({"author": MISSING}, "fk_transactions_created_by_users"),
        ({"reverses": MISSING}, "fk_transactions_reverses_transaction_id_transactions"),
    ],
)
def test_a_transfer_naming_what_does_not_exist_is_refused(
    service_engine: Engine, book: Book, changes: dict[str, object], constraint: str
) -> None:
    before = _count(service_engine, "SELECT count(*) FROM transactions")
    refused = _sqlstate_and_constraint(
        service_engine, INSERT_TRANSFER, **_transfer(book, **changes)
    )
    assert refused == ("23503", constraint)
    assert _count(service_engine, "SELECT count(*) FROM transactions") == before


def test_a_wallet_of_another_organization_is_refused(service_engine: Engine, book: Book) -> None:
    """The wallet exists, but not in the organization the transfer names."""
    other = create_book(service_engine, 1)
    refused = _sqlstate_and_constraint(
        service_engine, INSERT_TRANSFER, **_transfer(book, destination=other.wallet_ids[0])
    )
    assert refused == ("23503", "fk_transactions_destination_wallet_id_wallets")


def test_one_bad_row_refuses_the_whole_statement(service_engine: Engine, book: Book) -> None:
    rows = ", ".join(
        f"(:org, :org, gen_random_uuid()::text, repeat('0', 64), 'TRANSFER', :a, :{d}, 1, 'USD')"
        for d in ("b", "b", "missing", "b")
    )
    statement = (
        "INSERT INTO transactions (organization_id, destination_organization_id,"
        " idempotency_key, request_hash, kind, source_wallet_id, destination_wallet_id, amount,"
        f" currency) VALUES {rows}"
    )
    before = _count(service_engine, "SELECT count(*) FROM transactions")
    refused = _sqlstate_and_constraint(
        service_engine,
        statement,
        org=book.organization_id,
        a=book.wallet_ids[0],
        b=book.wallet_ids[1],
        missing=MISSING,
    )
    assert refused == ("23503", "fk_transactions_destination_wallet_id_wallets")
    assert _count(service_engine, "SELECT count(*) FROM transactions") == before


@pytest.mark.parametrize(
    ("statement", "fields", "constraint"),
    [
        (INSERT_ENTRY, {"wallet": MISSING}, "fk_ledger_entries_wallet_id_wallets"),
        (INSERT_ENTRY, {"transaction": MISSING}, "fk_ledger_entries_transaction_id_transactions"),
        (INSERT_EVENT, {"org": MISSING}, "fk_outbox_organization_id_organizations"),
        (INSERT_AUDIT, {"org": MISSING}, "fk_audit_logs_organization_id_organizations"),
    ],
)
def test_entries_events_and_audit_records_must_name_what_exists(
    engine: Engine,
    book: Book,
    posted: uuid.UUID,
    statement: str,
    fields: dict[str, object],
    constraint: str,
) -> None:
    """As the tables' owner (the service role may not insert entries by hand either)."""
    params = {
        "transaction": posted,
        "wallet": book.wallet_ids[1],
        "org": book.organization_id,
        **fields,
    }
    assert _sqlstate_and_constraint(engine, statement, **params) == ("23503", constraint)


def test_rows_naming_what_exists_are_written(engine: Engine, book: Book) -> None:
    """The checks pass what a foreign key passes: a NULL reference names nothing."""
    with engine.begin() as conn:
        conn.execute(text(INSERT_EVENT), {"org": book.organization_id})
        conn.execute(text("INSERT INTO audit_logs (organization_id, action) VALUES (NULL, 'x')"))


INSERT_ENTRIES = """
    INSERT INTO ledger_entries (transaction_id, wallet_id, organization_id, direction, amount,
        currency, balance_after)
    SELECT :transaction, w.id, :org, 'CREDIT', 1, 'USD', 1
    FROM unnest(CAST(:wallets AS uuid[])) AS w(id)
"""
WALLET_ROWS_READ = """
    SELECT idx_tup_fetch + seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'wallets'
"""


def test_each_wallet_reference_reads_one_wallet(
    engine: Engine, service_engine: Engine, posted: uuid.UUID
) -> None:
    """An organization of many wallets that the statistics do not know of yet (as after a
    burst of sign-ups, or with autovacuum off): each entry's check reads its own wallet by
    id (migration 0030). With both keys in the probe the planner read every wallet of the
    organization for each entry here (12,040 rows for these 40 entries)."""
    crowded = create_book(service_engine, 300)
    named = crowded.wallet_ids[:40]
    with engine.connect() as conn:
        before = conn.execute(text(WALLET_ROWS_READ)).scalar_one()
        conn.execute(
            text(INSERT_ENTRIES),
            {"transaction": posted, "org": crowded.organization_id, "wallets": named},
        )
        read = conn.execute(text(WALLET_ROWS_READ)).scalar_one() - before
        conn.rollback()
    assert read <= len(named)


@pytest.mark.parametrize(
    ("wallet", "constraint"),
    [
        ("system", "fk_ledger_entries_wallet_id_wallets"),
        ("source", "fk_transactions_source_wallet_id_wallets"),
    ],
)
def test_a_named_wallet_cannot_be_deleted(
    service_engine: Engine, book: Book, wallet: str, constraint: str
) -> None:
    """The SYSTEM wallet has entries; the other wallet is a PENDING transfer's source."""
    with service_engine.begin() as conn:
        insert_intents(conn, book, [(book.wallet_ids[1], book.wallet_ids[0], 1)])
    named = {"system": book.system_wallet_id, "source": book.wallet_ids[1]}[wallet]
    refused = _sqlstate_and_constraint(service_engine, "DELETE FROM wallets WHERE id = :w", w=named)
    assert refused == ("23503", constraint)


@pytest.mark.parametrize(
    ("naming", "constraint"),
    [
        (INSERT_EVENT, "fk_outbox_organization_id_organizations"),
        (INSERT_AUDIT, "fk_audit_logs_organization_id_organizations"),
    ],
)
def test_a_named_organization_cannot_be_deleted(
    engine: Engine, naming: str, constraint: str
) -> None:
    """An organization with no wallet (whose own foreign key would refuse first), named by
    one event or audit record. As the owner: the service role may not delete one at all."""
    with engine.begin() as conn:
        org = conn.execute(
            text(
                "INSERT INTO organizations (name, default_currency) VALUES ('o', 'USD') RETURNING id"
            )
        ).scalar_one()
        conn.execute(text(naming), {"org": org})
    refused = _sqlstate_and_constraint(engine, "DELETE FROM organizations WHERE id = :o", o=org)
    assert refused == ("23503", constraint)


def test_an_author_cannot_be_deleted(engine: Engine, book: Book) -> None:
    with engine.begin() as conn:
        user = conn.execute(
            text(
                "INSERT INTO users (organization_id, email, full_name, password_hash, role)"
                " VALUES (:o, gen_random_uuid()::text || '@example.com', 'A', 'x', 'ADMIN')"
                " RETURNING id"
            ),
            {"o": book.organization_id},
        ).scalar_one()
        conn.execute(text(INSERT_TRANSFER), _transfer(book, author=user))
    refused = _sqlstate_and_constraint(engine, "DELETE FROM users WHERE id = :u", u=user)
    assert refused == ("23503", "fk_transactions_created_by_users")


def test_a_wallet_nothing_names_is_deleted(service_engine: Engine) -> None:
    lone = create_book(service_engine, 1)
    with service_engine.begin() as conn:
        conn.execute(text("DELETE FROM wallets WHERE id = :w"), {"w": lone.wallet_ids[0]})
    assert (
        _count(service_engine, "SELECT count(*) FROM wallets WHERE id = :w", w=lone.wallet_ids[0])
        == 0
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE wallets SET id = gen_random_uuid() WHERE id = :a",
        "UPDATE wallets SET organization_id = gen_random_uuid() WHERE id = :a",
        "UPDATE organizations SET id = gen_random_uuid() WHERE id = :org",
        "UPDATE transactions SET destination_wallet_id = :a WHERE id = :t",
        "UPDATE transactions SET id = gen_random_uuid() WHERE id = :t",
    ],
)
def test_keys_and_references_never_change(
    service_engine: Engine, book: Book, statement: str
) -> None:
    with service_engine.begin() as conn:
        [pending] = insert_intents(conn, book, [(book.wallet_ids[1], book.system_wallet_id, 1)])
    params = {"a": book.wallet_ids[0], "org": book.organization_id, "t": pending}
    assert _sqlstate_and_constraint(service_engine, statement, **params)[0] == "23503"


@pytest.mark.parametrize("table", ["wallets", "transactions", "organizations", "users"])
def test_a_named_table_is_never_truncated(engine: Engine, table: str) -> None:
    """A TRUNCATE runs no DELETE trigger; the owner is refused it outright."""
    assert _sqlstate_and_constraint(engine, f"TRUNCATE {table} CASCADE")[0] == "23503"


def test_an_unchanged_reference_may_be_set(service_engine: Engine, book: Book) -> None:
    """The guard fires for a change only: setting a column to what it holds passes."""
    with service_engine.begin() as conn:
        [pending] = insert_intents(conn, book, [(book.wallet_ids[1], book.system_wallet_id, 1)])
        conn.execute(
            text("UPDATE transactions SET source_wallet_id = :s WHERE id = :t"),
            {"s": book.wallet_ids[1], "t": pending},
        )


INSERT_RACING = """
    INSERT INTO transactions (organization_id, destination_organization_id, idempotency_key,
        request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency)
    VALUES (%s, %s, gen_random_uuid()::text, repeat('0', 64), 'TRANSFER', %s, %s, 1, 'USD')
"""


def _second_waits_then_is_refused(
    database_url: str,
    first: Callable[[psycopg.Connection], object],
    second: Callable[[psycopg.Connection], object],
) -> None:
    """`first` runs and stays uncommitted; `second`, on another connection, must wait for
    it, then fail as a foreign key would once `first` commits."""
    url = to_psycopg_url(database_url)
    with (
        psycopg.connect(url) as one,
        psycopg.connect(url) as other,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        first(one)
        waiting = pool.submit(second, other)
        time.sleep(0.5)
        assert not waiting.done(), "the second statement must wait for the first"
        one.commit()
        failure = waiting.exception(timeout=10)
        other.rollback()
    assert type(failure) is errors.ForeignKeyViolation


def test_a_delete_waits_for_a_transfer_naming_the_wallet_then_is_refused(
    database_url: str, service_engine: Engine
) -> None:
    """The race a foreign key's row lock closed: a transfer naming a wallet is being
    stored while the wallet is deleted. The delete waits for it, then sees it."""
    lone = create_book(service_engine, 2)
    a, b = lone.wallet_ids
    _second_waits_then_is_refused(
        database_url,
        lambda conn: conn.execute(
            INSERT_RACING, (lone.organization_id, lone.organization_id, a, b)
        ),
        lambda conn: conn.execute("DELETE FROM wallets WHERE id = %s", (b,)),
    )
    assert _count(service_engine, "SELECT count(*) FROM wallets WHERE id = :w", w=b) == 1


def test_a_transfer_waits_for_a_delete_of_its_wallet_then_is_refused(
    database_url: str, service_engine: Engine
) -> None:
    lone = create_book(service_engine, 2)
    a, b = lone.wallet_ids
    _second_waits_then_is_refused(
        database_url,
        lambda conn: conn.execute("DELETE FROM wallets WHERE id = %s", (b,)),
        lambda conn: conn.execute(
            INSERT_RACING, (lone.organization_id, lone.organization_id, a, b)
        ),
    )
    assert _count(service_engine, "SELECT count(*) FROM wallets WHERE id = :w", w=b) == 0


def _foreign_keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(text("SELECT conname FROM pg_constraint WHERE contype = 'f'")).scalars()
        )


CHECKED = {
    "fk_transactions_source_wallet_id_wallets",
    "fk_transactions_destination_wallet_id_wallets",
    "fk_transactions_source_clearing_wallet_id_wallets",
    "fk_transactions_destination_clearing_wallet_id_wallets",
    "fk_transactions_created_by_users",
    "fk_transactions_reverses_transaction_id_transactions",
    "fk_ledger_entries_wallet_id_wallets",
    "fk_ledger_entries_transaction_id_transactions",
    "fk_outbox_organization_id_organizations",
    "fk_audit_logs_organization_id_organizations",
}


def test_the_migration_trades_the_foreign_keys_for_checks_and_back(unmigrated_url: str) -> None:
    """With a ledger in the database: up drops exactly these keys, down restores them (and
    validates the rows against them)."""
    config = alembic_config(unmigrated_url)
    command.upgrade(config, BEFORE)
    engine = create_engine(unmigrated_url)
    try:
        book = create_book(engine, 2)
        with engine.begin() as conn:
            insert_intents(conn, book, [(book.system_wallet_id, book.wallet_ids[0], 5)])
        with engine.begin() as conn:
            assert post_batch(conn, 10).completed == 1
        before = _foreign_keys(engine)
        assert CHECKED <= before
        command.upgrade(config, "head")
        assert _foreign_keys(engine) == before - CHECKED
        command.downgrade(config, BEFORE)
        assert _foreign_keys(engine) == before
        command.upgrade(config, "head")
    finally:
        engine.dispose()
