"""the service role, and wallet balances that only follow the ledger

- `vaultcraft_service`: the role every service process connects as. It owns nothing, so it
  cannot ALTER, DROP or TRUNCATE a table or disable a trigger, and (not being a superuser)
  cannot set `session_replication_role`. It may read and write the application's tables,
  but only INSERT and SELECT ledger entries and audit records (plus the sealer's one
  UPDATE of the chain columns), and only SELECT `alembic_version`. Tables made by later
  migrations get the same read/write grants by default privileges.
  The role is created here when it does not exist yet and this migration may create
  roles; otherwise the operator creates it first (see docs/operations.md). Without a
  password it can log in only where the server trusts local connections (the embedded
  server, a development server); a VAULTCRAFT_SERVICE_DATABASE_URL naming the role with a
  password sets that password. Roles are
  cluster-wide, grants are per database: several databases on one server share it.
- `wallets_balance_is_history`: a statement-level trigger that refuses a wallet whose
  balance changed to anything but its newest ledger entry's `balance_after` (one probe of
  `ix_ledger_entries_wallet_id_id` per changed wallet), and a new wallet with a balance.
  The table's owner (who could disable the trigger anyway) is exempt, for repairs.

Revision ID: 0008_roles
Revises: 0004_events
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import make_url

from runtime.settings import to_sqlalchemy_url

revision: str = "0008_roles"
down_revision: str | Sequence[str] | None = "0004_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "vaultcraft_service"
APPEND_ONLY = ("ledger_entries", "audit_logs")

CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
        BEGIN
            CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
                NOBYPASSRLS;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another migration created it at the same moment
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role {ROLE} does not exist and % may not create it', current_user
                    USING HINT = 'Create it first, as docs/operations.md shows.';
        END;
    END IF;
END $$
"""

GRANTS = [
    f"GRANT CONNECT, TEMPORARY ON DATABASE {{database}} TO {ROLE}",
    f"GRANT USAGE ON SCHEMA public TO {ROLE}",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}",
    f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE}",
    f"REVOKE UPDATE, DELETE ON {', '.join(APPEND_ONLY)} FROM {ROLE}",
    f"GRANT UPDATE (chain_seq, prev_hash, hash) ON audit_logs TO {ROLE}",
    f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public"
    f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {ROLE}",
]

BALANCE_GUARD = [
    """
    CREATE FUNCTION vaultcraft_balance_is_history() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        wallet uuid;
    BEGIN
        IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID),
                       'MEMBER') THEN
            RETURN NULL;  -- the owner may repair by hand (and could drop this trigger anyway)
        END IF;
        IF TG_OP = 'INSERT' THEN
            SELECT n.id INTO wallet FROM new_wallets n WHERE n.balance <> 0 LIMIT 1;
        ELSE
            SELECT n.id INTO wallet
            FROM new_wallets n JOIN old_wallets o ON o.id = n.id
            WHERE n.balance <> o.balance
              AND n.balance IS DISTINCT FROM (
                  SELECT e.balance_after FROM ledger_entries e
                  WHERE e.wallet_id = n.id ORDER BY e.id DESC LIMIT 1)
            LIMIT 1;
        END IF;
        IF wallet IS NOT NULL THEN
            RAISE EXCEPTION 'the balance of wallet % must equal its newest ledger entry''s'
                ' balance_after', wallet USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER wallets_balance_is_history AFTER UPDATE ON wallets
    REFERENCING OLD TABLE AS old_wallets NEW TABLE AS new_wallets
    FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_balance_is_history()
    """,
    """
    CREATE TRIGGER wallets_open_empty AFTER INSERT ON wallets
    REFERENCING NEW TABLE AS new_wallets
    FOR EACH STATEMENT EXECUTE FUNCTION vaultcraft_balance_is_history()
    """,
]


def _set_given_password() -> None:
    """With VAULTCRAFT_SERVICE_DATABASE_URL naming this role and a password (Docker Compose,
    servers with password authentication), give the role that password."""
    given = os.environ.get("VAULTCRAFT_SERVICE_DATABASE_URL")
    if not given:
        return
    url = make_url(to_sqlalchemy_url(given))
    if url.username != ROLE or not url.password:
        return
    op.get_bind().execute(
        sa.text("SELECT set_config('vaultcraft.service_password', :p, true)"), {"p": url.password}
    )
    op.execute(f"""
        DO $$ BEGIN
            EXECUTE format('ALTER ROLE {ROLE} PASSWORD %L',
                           current_setting('vaultcraft.service_password'));
        END $$
    """)


def upgrade() -> None:
    op.execute(CREATE_ROLE)
    _set_given_password()
    database = op.get_bind().exec_driver_sql("SELECT quote_ident(current_database())").scalar()
    for statement in GRANTS:
        op.execute(statement.format(database=database))
    for statement in BALANCE_GUARD:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS wallets_open_empty ON wallets")
    op.execute("DROP TRIGGER IF EXISTS wallets_balance_is_history ON wallets")
    op.execute("DROP FUNCTION IF EXISTS vaultcraft_balance_is_history()")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public"
        f" REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {ROLE}"
    )
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
    database = op.get_bind().exec_driver_sql("SELECT quote_ident(current_database())").scalar()
    op.execute(f"REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM {ROLE}")
