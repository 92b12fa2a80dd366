"""a reference to a wallet is probed by the wallet's id, whatever the planner knows

Migration 0029 checks each new row's references once a statement, with a scalar subquery a
row: `(SELECT true FROM wallets AS p WHERE p.id = a.wallet_id AND p.organization_id =
a.organization_id) IS NULL`. The planner chooses that probe's index once for the life of
a connection (PL/pgSQL keeps the plan), from the statistics of the moment; with two
equality conditions it may take `ix_wallets_organization_id_created_at` and filter on the
id, reading every wallet of the organization for each entry written. Seen on a database
of 301 wallets in one organization: 300 index entries read a probe, 2 ms of a 5 ms posting
statement for 40 transfers. On a large organization whose wallets outgrew its statistics
that is a full scan of its wallets for every entry.

The probe now finds the wallet by its id alone (the primary key, or the unique `(id,
organization_id)`: either leads with the id and holds one entry for it) and compares the rest of the reference with what it found: `(SELECT
p.organization_id FROM wallets AS p WHERE p.id = a.wallet_id) IS DISTINCT FROM
a.organization_id`. Missing and belonging to another organization are refused as before,
with the same constraint's name. Single-column references already probed one index.

Revision ID: 0030_references_probed_by_id
Revises: 0029_set_based_references
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from alembic import op

revision: str = "0030_references_probed_by_id"
down_revision: str | Sequence[str] | None = "0029_set_based_references"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class Reference(NamedTuple):
    """`table(columns)` names `parent(keys)`; the first key is the parent's primary key.
    (A tuple, not a dataclass: Alembic loads a migration without registering it.)"""

    table: str
    columns: tuple[str, ...]
    parent: str
    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"fk_{self.table}_{self.columns[0]}_{self.parent}"


def _wallet(table: str, wallet: str, organization: str) -> Reference:
    return Reference(table, (wallet, organization), "wallets", ("id", "organization_id"))


REFERENCES = (
    _wallet("ledger_entries", "wallet_id", "organization_id"),
    Reference("ledger_entries", ("transaction_id",), "transactions", ("id",)),
    _wallet("transactions", "source_wallet_id", "organization_id"),
    _wallet("transactions", "destination_wallet_id", "destination_organization_id"),
    _wallet("transactions", "source_clearing_wallet_id", "organization_id"),
    _wallet("transactions", "destination_clearing_wallet_id", "destination_organization_id"),
    Reference("transactions", ("created_by",), "users", ("id",)),
    Reference("transactions", ("reverses_transaction_id",), "transactions", ("id",)),
)
"""The references of the two tables that name a wallet (0029's, in its order): their
check functions are written again whole."""

TABLES = tuple(dict.fromkeys(r.table for r in REFERENCES))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _violation(reference: Reference) -> str:
    """RAISE as PostgreSQL's own foreign key check words it (as 0029 does)."""
    message = (
        f'insert or update on table "{reference.table}" violates foreign key constraint'
        f' "{reference.name}"'
    )
    detail = (
        f"Key ({', '.join(reference.columns)})=({', '.join('%s' for _ in reference.columns)})"
        f' is not present in table "{reference.parent}".'
    )
    values = ", ".join(f"missing.{c}" for c in reference.columns)
    return f"""
            RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = {_literal(message)}, CONSTRAINT = '{reference.name}',
                TABLE = '{reference.table}', SCHEMA = 'public',
                DETAIL = format({_literal(detail)}, {values});"""


def _by_id(reference: Reference) -> str:
    """The row `a` names no row of the parent: found by its primary key alone, the rest of
    the reference compared with what was found."""
    first, *rest = zip(reference.columns, reference.keys, strict=True)
    found = "true" if not rest else ", ".join(f"p.{k}" for _, k in rest)
    given = "true" if not rest else ", ".join(f"a.{c}" for c, _ in rest)
    if len(rest) > 1:
        found, given = f"ROW({found})", f"ROW({given})"
    return (
        f"(SELECT {found} FROM {reference.parent} AS p WHERE p.{first[1]} = a.{first[0]})"
        f" IS DISTINCT FROM {given}"
    )


def _by_all_keys(reference: Reference) -> str:
    """0029's probe: every key in the WHERE, the index left to the planner."""
    present = " AND ".join(
        f"p.{k} = a.{c}" for c, k in zip(reference.columns, reference.keys, strict=True)
    )
    return f"(SELECT true FROM {reference.parent} AS p WHERE {present}) IS NULL"


def _check_function(table: str, probe: Callable[[Reference], str]) -> str:
    checks = "".join(
        f"""
        SELECT {", ".join(f"a.{c}" for c in r.columns)} INTO missing FROM added AS a
        WHERE {" AND ".join(f"a.{c} IS NOT NULL" for c in r.columns)}
          AND {probe(r)}
        LIMIT 1;
        IF FOUND THEN{_violation(r)}
        END IF;"""
        for r in REFERENCES
        if r.table == table
    )
    return f"""
    CREATE OR REPLACE FUNCTION vaultcraft_{table}_references() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        missing record;
    BEGIN{checks}
        RETURN NULL;
    END $$"""


def upgrade() -> None:
    for table in TABLES:
        op.execute(_check_function(table, _by_id))


def downgrade() -> None:
    for table in TABLES:
        op.execute(_check_function(table, _by_all_keys))
