"""Waiting for the audit sealer in tests."""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.support.ledger_checks import wait_until
from workers.audit_sealer import seal_all


def unsealed(engine: Engine) -> int:
    """Committed audit records of the database without a seal."""
    with engine.connect() as conn:
        return int(
            conn.scalar(
                text(
                    "SELECT count(*) FROM audit_logs a WHERE NOT EXISTS"
                    " (SELECT 1 FROM audit_seals s WHERE s.record_id = a.id)"
                )
            )
            or 0
        )


def seal_everything(engine: Engine) -> None:
    """Seal until no committed record waits. The sealer takes only records whose
    transaction ended before its read began, and that horizon is the server's: another
    test database's open transaction may hold it back for a moment."""
    wait_until(lambda: seal_all(engine) >= 0 and unsealed(engine) == 0, 30, "every seal")
