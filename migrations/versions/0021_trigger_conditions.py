"""row triggers that run only when they would refuse

Posting moves every transfer out of PENDING and the audit sealer seals every record: both
fired a PL/pgSQL row trigger that then allowed the change, at a function call per row
(and, for the audit record, two `to_jsonb` conversions of the whole row). The same rules
now sit in the triggers' `WHEN` conditions, which PostgreSQL evaluates without calling a
function, so the function runs only for a change it refuses.

- `transactions_final_is_final` fires on UPDATE only when the row is not PENDING (a
  PENDING row may move to any state; a HELD row may end once, which the function still
  decides); `transactions_never_deleted` refuses every DELETE.
- `audit_logs_append_only` fires on UPDATE unless the update is the one seal allowed: the
  three chain columns set once from NULL and every other column unchanged.
  `audit_logs_never_deleted` refuses every DELETE. `tests/events/test_audit.py` checks
  that the condition names every column of `audit_logs`.

Revision ID: 0021_trigger_conditions
Revises: 0020_cross_org_legs
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021_trigger_conditions"
down_revision: str | Sequence[str] | None = "0020_cross_org_legs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIT_FIELDS = (
    "id",
    "organization_id",
    "actor_id",
    "action",
    "resource_type",
    "resource_id",
    "client_address",
    "user_agent",
    "request_id",
    "details",
    "created_at",
)
"""Every column of `audit_logs` but the three the seal writes."""
SEAL_COLUMNS = ("chain_seq", "prev_hash", "hash")


def _row(prefix: str) -> str:
    return ", ".join(f"{prefix}.{name}" for name in AUDIT_FIELDS)


THE_SEAL = " AND ".join(
    [f"OLD.{c} IS NULL AND NEW.{c} IS NOT NULL" for c in SEAL_COLUMNS]
    + [f"({_row('OLD')}) IS NOT DISTINCT FROM ({_row('NEW')})"]
)


def upgrade() -> None:
    op.execute("DROP TRIGGER transactions_final_is_final ON transactions")
    op.execute(
        """
        CREATE TRIGGER transactions_final_is_final BEFORE UPDATE ON transactions
        FOR EACH ROW WHEN (OLD.status <> 'PENDING')
        EXECUTE FUNCTION vaultcraft_final_is_final()
        """
    )
    op.execute(
        """
        CREATE TRIGGER transactions_never_deleted BEFORE DELETE ON transactions
        FOR EACH ROW EXECUTE FUNCTION vaultcraft_final_is_final()
        """
    )
    op.execute("DROP TRIGGER audit_logs_append_only ON audit_logs")
    op.execute(
        f"""
        CREATE TRIGGER audit_logs_append_only BEFORE UPDATE ON audit_logs
        FOR EACH ROW WHEN (NOT ({THE_SEAL}))
        EXECUTE FUNCTION vaultcraft_audit_seal_only()
        """
    )
    op.execute(
        """
        CREATE TRIGGER audit_logs_never_deleted BEFORE DELETE ON audit_logs
        FOR EACH ROW EXECUTE FUNCTION vaultcraft_audit_seal_only()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_logs_never_deleted ON audit_logs")
    op.execute("DROP TRIGGER audit_logs_append_only ON audit_logs")
    op.execute(
        """
        CREATE TRIGGER audit_logs_append_only BEFORE DELETE OR UPDATE ON audit_logs
        FOR EACH ROW EXECUTE FUNCTION vaultcraft_audit_seal_only()
        """
    )
    op.execute("DROP TRIGGER transactions_never_deleted ON transactions")
    op.execute("DROP TRIGGER transactions_final_is_final ON transactions")
    op.execute(
        """
        CREATE TRIGGER transactions_final_is_final BEFORE DELETE OR UPDATE ON transactions
        FOR EACH ROW EXECUTE FUNCTION vaultcraft_final_is_final()
        """
    )
