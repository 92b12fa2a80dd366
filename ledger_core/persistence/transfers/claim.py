"""Claiming waiting transfers for a posting batch, fairly across organizations.

The claim locks PENDING transfers with `FOR NO KEY UPDATE SKIP LOCKED`, so concurrent
workers take disjoint batches and a transfer is never posted twice. Members of an atomic
batch are claimed through their leader (the member whose id is the batch id), so a batch
is always posted whole by one worker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from operator import itemgetter
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from sqlalchemy import Connection, text

from ledger_core.persistence.arrays import pg_array
from ledger_core.persistence.direct import fetch_all_sync
from ledger_core.persistence.pending_state import STILL_PENDING
from ledger_core.posting import Leg, PendingTransfer

CLAIM = text("""
    WITH RECURSIVE orgs AS (
        (SELECT organization_id, seq FROM transactions WHERE status = 'PENDING'
         ORDER BY organization_id, seq LIMIT 1)
        UNION ALL
        SELECT next.organization_id, next.seq FROM orgs CROSS JOIN LATERAL (
            SELECT t.organization_id, t.seq FROM transactions AS t
            WHERE t.status = 'PENDING' AND t.organization_id > orgs.organization_id
            ORDER BY t.organization_id, t.seq LIMIT 1
        ) AS next
    ), waiting AS (
        SELECT organization_id, seq AS first_seq FROM orgs
    ), quota AS (
        SELECT CASE WHEN count(*) <= 1 THEN :limit
                    ELSE CAST(least(:share, ceil(CAST(:limit AS numeric) / count(*))) AS int)
               END AS n
        FROM waiting
    )
    SELECT c.*, quota.n AS claim_quota, waiting.first_seq AS claim_first_seq
    FROM waiting CROSS JOIN quota CROSS JOIN LATERAL (
        SELECT * FROM transactions AS t
        WHERE t.organization_id >= waiting.organization_id
          AND t.organization_id <= waiting.organization_id AND t.status = 'PENDING'
          AND (t.atomic_group_id IS NULL OR t.atomic_group_id = t.id)
        ORDER BY t.organization_id, t.seq
        LIMIT quota.n
        FOR NO KEY UPDATE SKIP LOCKED
    ) AS c
    LIMIT :limit
""")
"""Fair claim: while several organizations have transfers waiting, each gets an equal
share of the batch, at most `fair_share` (`VAULTCRAFT_FAIR_SHARE`), in submission order; a lone organization gets
the whole batch. The organizations are found by a skip scan of
`ix_transactions_pending_org_seq` (one index probe per organization, however many rows
wait), and each share is one short range of the same index. So a tenant with 100,000
waiting transfers neither fills every batch nor makes another tenant's batch as slow as
a full one.

Each share is read with `organization_id` between itself and itself rather than equal to
it: with an equality the planner may walk `ix_transactions_pending_seq` and filter by
organization, which reads the whole backlog of a flooding tenant to find a quiet one's
transfer; the range leaves `ix_transactions_pending_org_seq` as the only ordered path
(about 8 ms for 100,000 waiting transfers over three organizations, against 60-100 ms)."""

DEFAULT_FAIR_SHARE = 100
"""Most transfers one organization puts in a batch shared with others unless configured:
a shared batch stays short, so the others' transfers commit within the latency target."""

CLAIM_GROUP_MEMBERS = text(f"""
    SELECT * FROM transactions
    WHERE atomic_group_id = ANY(CAST(:groups AS uuid[])) AND id <> atomic_group_id
      AND {STILL_PENDING}
    ORDER BY seq
    FOR NO KEY UPDATE
""")


@dataclass(frozen=True)
class Claimed:
    """Locked waiting transfers, as the posting rules see them and as stored."""

    transfers: list[PendingTransfer]
    rows: dict[UUID, dict[str, Any]]
    more: bool = False
    first_seqs: Mapping[UUID, int] = field(default_factory=dict)
    """Each organization's oldest waiting transfer (its `seq`) when the claim ran, locked or
    not: where another batch's claimed transfers begin (`batch_locks.free_subset`)."""

    def subset(self, transfers: list[PendingTransfer]) -> Claimed:
        return Claimed(
            transfers, {t.id: self.rows[t.id] for t in transfers}, first_seqs=self.first_seqs
        )


_PENDING_FIELDS = tuple(f.name for f in fields(PendingTransfer) if f.init)
_pending_values = itemgetter(*_PENDING_FIELDS)
"""The columns of a stored transfer the posting rules read, in `PendingTransfer`'s order."""
_LEGS_AT = _PENDING_FIELDS.index("postings")


def pending_of(row: Mapping[str, Any]) -> PendingTransfer:
    """A stored transfer as the posting rules see it."""
    values = _pending_values(row)
    if values[_LEGS_AT] is not None:
        values = list(values)
        values[_LEGS_AT] = legs_of(values[_LEGS_AT])
    return PendingTransfer(*values)


def legs_of(stored: Sequence[Mapping[str, Any]]) -> tuple[Leg, ...]:
    """The legs of a multi-leg transaction as `transactions.postings` stores them (a
    cross-org leg with its payee organization and clearing wallets)."""
    return tuple(
        Leg(
            UUID(leg["source_wallet_id"]),
            UUID(leg["destination_wallet_id"]),
            int(leg["amount"]),
            leg["currency"],
            _uuid(leg.get("destination_organization_id")),
            _uuid(leg.get("source_clearing_wallet_id")),
            _uuid(leg.get("destination_clearing_wallet_id")),
        )
        for leg in stored
    )


def _uuid(value: str | None) -> UUID | None:
    return None if value is None else UUID(value)


def claim_batch(conn: Connection, limit: int, fair_share: int = DEFAULT_FAIR_SHARE) -> Claimed:
    """Lock up to `limit` waiting transfers (whole atomic batches), shared fairly among
    organizations (at most `fair_share` each while several wait), in submission order."""
    params = {"limit": limit, "share": fair_share}
    rows: list[dict[str, Any]] = fetch_all_sync(conn, CLAIM, params, dict_row)
    quota = min((r.pop("claim_quota") for r in rows), default=limit)
    first_seqs = {r["organization_id"]: r.pop("claim_first_seq") for r in rows}
    shares = Counter(r["organization_id"] for r in rows)
    more = len(rows) >= limit or any(n >= quota for n in shares.values())
    groups = [r["atomic_group_id"] for r in rows if r["atomic_group_id"] is not None]
    if groups:
        rows += fetch_all_sync(conn, CLAIM_GROUP_MEMBERS, {"groups": pg_array(groups)}, dict_row)
    rows.sort(key=itemgetter("seq"))
    return Claimed([pending_of(r) for r in rows], {r["id"]: r for r in rows}, more, first_seqs)
