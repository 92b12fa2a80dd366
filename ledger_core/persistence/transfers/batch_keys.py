"""A batch's own `Idempotency-Key`: claimed before its transfers are stored, replayed after.

The claim is an insert into `batch_requests` under its primary key (organization, key):
a second request with the same key waits on the first's transaction and then finds its
row, so two identical batches racing store the transfers once. The row commits (or rolls
back) with the transfers, so a refused batch leaves its key unused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.errors import IdempotencyKeyReused
from ledger_core.persistence.arrays import pg_array

CLAIM_KEY = text("""
    INSERT INTO batch_requests (organization_id, idempotency_key, request_hash)
    VALUES (:org, :key, :hash)
    ON CONFLICT DO NOTHING
    RETURNING organization_id
""")

FIND_KEY = text("""
    SELECT request_hash, transaction_ids FROM batch_requests
    WHERE organization_id = :org AND idempotency_key = :key
""")

RECORD_IDS = text("""
    UPDATE batch_requests SET transaction_ids = CAST(:ids AS uuid[])
    WHERE organization_id = :org AND idempotency_key = :key
""")

STORED_IN_ORDER = text("""
    SELECT t.* FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS b(id, n)
    JOIN transactions AS t ON t.id = b.id
    ORDER BY b.n
""")


async def claim_batch_key(
    conn: AsyncConnection, organization_id: UUID, key: str, fingerprint: str
) -> list[dict[str, Any]] | None:
    """None when the key is new (now claimed in this transaction); else the transactions
    the earlier batch stored, as they are now. Another batch under the key is refused."""
    params = {"org": organization_id, "key": key, "hash": fingerprint}
    if (await conn.execute(CLAIM_KEY, params)).first() is not None:
        return None
    found = (await conn.execute(FIND_KEY, params)).one()
    if found.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was already used with a different batch",
            field="Idempotency-Key",
        )
    rows = await conn.execute(STORED_IN_ORDER, {"ids": pg_array(found.transaction_ids)})
    return [dict(r._mapping) for r in rows]


async def record_batch(
    conn: AsyncConnection, organization_id: UUID, key: str, ids: Sequence[UUID]
) -> None:
    """Remember which transactions the batch under `key` stored, in request order."""
    await conn.execute(RECORD_IDS, {"org": organization_id, "key": key, "ids": pg_array(ids)})
