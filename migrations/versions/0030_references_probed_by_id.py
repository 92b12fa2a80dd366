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
organization_id)`: either leads with the id and holds one entry for it) and compares the
rest of the reference with what it found: `(SELECT p.organization_id FROM wallets AS p
WHERE p.id = a.wallet_id) IS DISTINCT FROM a.organization_id`. Missing and belonging to
another organization are refused as before, with the same constraint's name. Single-column
references already probed one index.

Revision ID: 0030_references_probed_by_id
Revises: 0029_set_based_references
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0030_references_probed_by_id"
down_revision: str | Sequence[str] | None = "0029_set_based_references"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _migration_0029() -> ModuleType:
    """0029 itself, for its references, its refusals' wording and its check functions (a
    migration's file name is not a module name, so it is loaded from its path)."""
    path = Path(__file__).with_name("0029_set_based_references.py")
    spec = importlib.util.spec_from_file_location("vaultcraft_migration_0029", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_0029 = _migration_0029()
TABLES = tuple(dict.fromkeys(r.table for r in _0029.REFERENCES if len(r.keys) > 1))
"""The tables with a reference to a wallet and its organization: their check functions are
written again whole."""


def _by_id(reference: _0029.Reference) -> str:
    """The row `a` names no row of the parent: found by its first key alone (the parent's
    id), the rest of the reference compared with what was found."""
    first, *rest = zip(reference.columns, reference.keys, strict=True)
    found = "true" if not rest else ", ".join(f"p.{k}" for _, k in rest)
    given = "true" if not rest else ", ".join(f"a.{c}" for c, _ in rest)
    if len(rest) > 1:
        found, given = f"ROW({found})", f"ROW({given})"
    return (
        f"(SELECT {found} FROM {reference.parent} AS p WHERE p.{first[1]} = a.{first[0]})"
        f" IS DISTINCT FROM {given}"
    )


def _check_function(table: str) -> str:
    """0029's check function of `table`, each reference probed `_by_id`."""
    checks = "".join(
        f"""
        SELECT {", ".join(f"a.{c}" for c in r.columns)} INTO missing FROM added AS a
        WHERE {" AND ".join(f"a.{c} IS NOT NULL" for c in r.columns)}
          AND {_by_id(r)}
        LIMIT 1;
        IF FOUND THEN{_0029._violation(r, "missing")}
        END IF;"""
        for r in _0029.REFERENCES
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
        op.execute(_check_function(table))


def downgrade() -> None:
    for table in TABLES:
        op.execute(
            _0029._check_function(table).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
        )
