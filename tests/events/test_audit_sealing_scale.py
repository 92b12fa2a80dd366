"""The sealer's cost a record stays the same however many records are already sealed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql

from ledger_core.persistence.audit.chain import (
    OLDEST_UNSEALED_AGE_SQL,
    SEAL_BATCH,
    WAITING_RECORDS,
)
from tests.support.audit import seal_everything
from tests.support.databases import fresh_engine
from tests.support.ledger import create_book

SEALED = 20_000
WAITING = 1_000


@pytest.fixture
def scratch(service_urls: tuple[str, str]) -> Iterator[Engine]:
    """A database of this test's own: its seal counts and statistics are the test's."""
    with fresh_engine(service_urls[0], "vaultcraft_sealing", pool_size=2) as engine:
        yield engine


def _write_records(engine: Engine, organization_id: str, count: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO audit_logs (organization_id, action, resource_type, resource_id,
                details, created_at)
            SELECT :org, 'transfer.submitted', 'transaction', gen_random_uuid()::text,
                '{"amount": "1.00"}', now()
            FROM generate_series(1, :count)
            """),
            {"org": organization_id, "count": count},
        )


def _explain(engine: Engine, sql: str, params: dict[str, object] | None = None) -> str:
    with engine.begin() as conn:
        return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}", params or {}))


def _waiting_read_plan(engine: Engine) -> str:
    """The plan of the sealer's read of waiting records, from where its cursor stands."""
    with engine.connect() as conn:
        txid, record_id = conn.execute(
            text("SELECT txid::text, record_id FROM audit_seal_cursor")
        ).one()
    params = {"txid": txid, "record_id": record_id, "limit": SEAL_BATCH}
    return _explain(engine, str(WAITING_RECORDS.compile(dialect=postgresql.dialect())), params)


def test_the_sealer_probes_each_records_seal_instead_of_reading_every_seal(
    scratch: Engine,
) -> None:
    """With every seal read into a hash for each round, a round's cost grew with the
    trail (88 ms for a thousand records at 300,000 sealed): the read must probe the seals'
    key for the records it reads, whatever the statistics say."""
    organization_id = str(create_book(scratch, 0).organization_id)
    _write_records(scratch, organization_id, SEALED)
    seal_everything(scratch)
    _write_records(scratch, organization_id, WAITING)
    with scratch.begin() as conn:
        conn.execute(text("ANALYZE audit_logs, audit_seals"))

    plans = [_waiting_read_plan(scratch), _explain(scratch, OLDEST_UNSEALED_AGE_SQL)]

    for plan in plans:
        assert "Seq Scan on audit_seals" not in plan, plan
        assert "pk_audit_seals" in plan, plan
    seal_everything(scratch)  # the server's horizon: another test's transaction may hold it
    with scratch.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_seals")).scalar_one() == (
            SEALED + WAITING
        )
