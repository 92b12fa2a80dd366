"""the hot tables' references are checked once a statement instead of once a row

A foreign key is checked by a row trigger: for every row inserted, PostgreSQL queues an
event and, at the statement's end, runs one query through SPI that finds and share-locks
the referenced row. A posted transfer fired ten of them (its transaction's two wallets,
their two clearing wallets, its author and its reversal; the audit record's organization;
both ledger entries' wallets and transaction; the event's organization), a fifth of
what PostgreSQL spent posting a batch.

The same references are now checked by one statement-level trigger a table, over the
statement's new rows (a transition table): each row's referenced key is probed in the
referenced table's primary or unique index, in one query. A missing key raises
`foreign_key_violation` (SQLSTATE 23503) naming the constraint it replaces, as before.

What the row locks of a foreign key also gave, that a referenced row cannot vanish or
change its key while a reference to it is being written, is kept by the other side:
- a referenced key never changes: changing `id` of a wallet, transaction, organization or
  user, or a wallet's `organization_id`, is refused (no path of the service does either);
- deleting wallets, organizations or users is checked the same way, once a statement:
  the check first takes a SHARE lock on each referencing table, so it waits for every
  transaction writing them to end and keeps new writes out until it ends, then refuses
  the delete if any row names a deleted key. (Transactions are never deleted, 0021.)
- a referenced table (wallets, transactions, organizations, users) is never truncated (a
  TRUNCATE runs no DELETE trigger);
- the references of a stored row never change: an UPDATE that would change one is refused
  (ledger entries, audit records and events are insert-only already; this holds even for
  the owner with their guards switched off for a repair).

Revision ID: 0029_set_based_references
Revises: 0028_wallet_day_counts
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from alembic import op

revision: str = "0029_set_based_references"
down_revision: str | Sequence[str] | None = "0028_wallet_day_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class Reference(NamedTuple):
    """One foreign key replaced: `table(columns)` names `parent(keys)`. (A tuple, not a
    dataclass: Alembic loads a migration without registering it as a module.)"""

    table: str
    columns: tuple[str, ...]
    parent: str
    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"fk_{self.table}_{self.columns[0]}_{self.parent}"

    def definition(self) -> str:
        return (
            f"FOREIGN KEY ({', '.join(self.columns)})"
            f" REFERENCES {self.parent} ({', '.join(self.keys)})"
        )


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
    Reference("outbox", ("organization_id",), "organizations", ("id",)),
    Reference("audit_logs", ("organization_id",), "organizations", ("id",)),
)

TABLES = tuple(dict.fromkeys(r.table for r in REFERENCES))
KEYS = {
    parent: tuple(dict.fromkeys(k for r in REFERENCES if r.parent == parent for k in r.keys))
    for parent in dict.fromkeys(r.parent for r in REFERENCES)
}
"""Each referenced table's columns that the references name, which never change."""
PARENTS = tuple(parent for parent in KEYS if parent != "transactions")
"""Parents whose rows may be deleted; `transactions` refuses every DELETE already (0021)."""


def _of(table: str) -> list[Reference]:
    return [r for r in REFERENCES if r.table == table]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _violation(reference: Reference, alias: str) -> str:
    """RAISE as PostgreSQL's own foreign key check words it, for the key in `alias`."""
    message = (
        f'insert or update on table "{reference.table}" violates foreign key constraint'
        f' "{reference.name}"'
    )
    detail = (
        f"Key ({', '.join(reference.columns)})=({', '.join('%s' for _ in reference.columns)})"
        f' is not present in table "{reference.parent}".'
    )
    values = ", ".join(f"{alias}.{c}" for c in reference.columns)
    return f"""
            RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = {_literal(message)}, CONSTRAINT = '{reference.name}',
                TABLE = '{reference.table}', SCHEMA = 'public',
                DETAIL = format({_literal(detail)}, {values});"""


def _matches(reference: Reference, child: str, parent: str) -> str:
    """The condition that the row `child` names the row `parent`."""
    pairs = zip(reference.columns, reference.keys, strict=True)
    return " AND ".join(f"{parent}.{k} = {child}.{c}" for c, k in pairs)


def _missing(reference: Reference, rows: str) -> str:
    """The first row of `rows` whose key is not in the parent. The probe is a scalar
    subquery, so it stays one index probe a row whatever the planner guesses of `rows`."""
    present = _matches(reference, child="a", parent="p")
    given = " AND ".join(f"a.{c} IS NOT NULL" for c in reference.columns)
    columns = ", ".join(f"a.{c}" for c in reference.columns)
    return f"""
        SELECT {columns} INTO missing FROM {rows} AS a
        WHERE {given}
          AND (SELECT true FROM {reference.parent} AS p WHERE {present}) IS NULL
        LIMIT 1;
        IF FOUND THEN{_violation(reference, "missing")}
        END IF;"""


def _check_function(table: str) -> str:
    checks = "".join(_missing(r, "added") for r in _of(table))
    return f"""
    CREATE FUNCTION vaultcraft_{table}_references() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        missing record;
    BEGIN{checks}
        RETURN NULL;
    END $$"""


def _statement_trigger(table: str, check: StatementCheck) -> str:
    """A trigger run once a statement, over the rows it changed (a transition table)."""
    return f"""
    CREATE TRIGGER {table}_{check.trigger} AFTER {check.event} ON {table}
        REFERENCING {check.rows}
        FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_{table}_{check.function}()"""


def _children(parent: str) -> list[Reference]:
    return [r for r in REFERENCES if r.parent == parent]


def _delete_function(parent: str) -> str:
    """Refuses deleting a row still named. SECURITY DEFINER: the service role may not take
    a SHARE lock on the insert-only tables it references from."""
    tables = sorted({r.table for r in _children(parent)})
    checks = []
    for reference in _children(parent):
        named = _matches(reference, child="c", parent="d")
        keys = ", ".join(f"d.{k}" for k in reference.keys)
        found = ", ".join(f"named.{k}" for k in reference.keys)
        message = (
            f'update or delete on table "{parent}" violates foreign key constraint'
            f' "{reference.name}" on table "{reference.table}"'
        )
        detail = (
            f"Key ({', '.join(reference.keys)})=(%s) is still referenced from table"
            f' "{reference.table}".'
        )
        checks.append(f"""
        SELECT {keys} INTO named FROM removed AS d
        WHERE EXISTS (SELECT FROM public.{reference.table} AS c WHERE {named})
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = {_literal(message)}, CONSTRAINT = '{reference.name}',
                TABLE = '{reference.table}', SCHEMA = 'public',
                DETAIL = format({_literal(detail)}, concat_ws(', ', {found}));
        END IF;""")
    return f"""
    CREATE FUNCTION vaultcraft_{parent}_still_named() RETURNS trigger LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DECLARE
        named record;
    BEGIN
        LOCK TABLE {", ".join(f"public.{t}" for t in tables)} IN SHARE MODE;{"".join(checks)}
        RETURN NULL;
    END $$"""


REFUSE_TRUNCATE = """
    CREATE FUNCTION vaultcraft_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'TRUNCATE of % is refused: its rows may be named, delete them instead',
            TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
    END $$"""
"""A TRUNCATE runs no DELETE trigger, and no foreign key makes it cascade to the naming
tables any more: a referenced table is never truncated."""

REFUSE_CHANGE = """
    CREATE FUNCTION vaultcraft_refuse_reference_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% of table "%" never change', TG_ARGV[0], TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
    END $$"""


def _fixed_trigger(table: str, columns: Sequence[str], what: str) -> str:
    """Fires only for an UPDATE that sets one of `columns` to something else."""
    old = ", ".join(f"OLD.{c}" for c in columns)
    new = ", ".join(f"NEW.{c}" for c in columns)
    return f"""
    CREATE TRIGGER {table}_{what.replace(" ", "_")}_fixed
        BEFORE UPDATE OF {", ".join(columns)} ON {table}
        FOR EACH ROW WHEN (ROW({old}) IS DISTINCT FROM ROW({new}))
        EXECUTE FUNCTION vaultcraft_refuse_reference_change('{what}')"""


def _reference_columns(table: str) -> list[str]:
    return list(dict.fromkeys(c for r in _of(table) for c in r.columns))


class StatementCheck(NamedTuple):
    """Statement-level checks of some tables: `body` makes each table's function."""

    tables: tuple[str, ...]
    event: str
    rows: str
    trigger: str
    function: str
    body: Callable[[str], str]


CHECKS = (
    StatementCheck(
        TABLES, "INSERT", "NEW TABLE AS added", "references_exist", "references", _check_function
    ),
    StatementCheck(
        PARENTS,
        "DELETE",
        "OLD TABLE AS removed",
        "deleted_unnamed",
        "still_named",
        _delete_function,
    ),
)


def upgrade() -> None:
    for reference in REFERENCES:
        op.drop_constraint(reference.name, reference.table, type_="foreignkey")
    for check in CHECKS:
        for table in check.tables:
            op.execute(check.body(table))
            op.execute(_statement_trigger(table, check))
    op.execute(REFUSE_CHANGE)
    op.execute(REFUSE_TRUNCATE)
    for parent, keys in KEYS.items():
        op.execute(_fixed_trigger(parent, keys, "keys"))
        op.execute(
            f"CREATE TRIGGER {parent}_no_truncate BEFORE TRUNCATE ON {parent}"
            " FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_refuse_truncate()"
        )
    for table in TABLES:
        op.execute(_fixed_trigger(table, _reference_columns(table), "references"))


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_references_fixed ON {table}")
    for parent in KEYS:
        op.execute(f"DROP TRIGGER {parent}_no_truncate ON {parent}")
        op.execute(f"DROP TRIGGER {parent}_keys_fixed ON {parent}")
    op.execute("DROP FUNCTION vaultcraft_refuse_truncate()")
    op.execute("DROP FUNCTION vaultcraft_refuse_reference_change()")
    for check in CHECKS:
        for table in check.tables:
            op.execute(f"DROP TRIGGER {table}_{check.trigger} ON {table}")
            op.execute(f"DROP FUNCTION vaultcraft_{table}_{check.function}()")
    for reference in REFERENCES:
        op.execute(
            f"ALTER TABLE {reference.table} ADD CONSTRAINT {reference.name}"
            f" {reference.definition()}"
        )
