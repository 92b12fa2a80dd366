"""Sealing audit records into each organization's hash chain, and checking the chain.

Records are written unsealed (no hash) by whoever audits an action, so writers never
contend on a chain head. A sealer (a loop in the relay process) later seals each
organization's unsealed records in id order. It takes a per-organization transaction
advisory lock first, so two relays never interleave one chain; the 0001 migration's
trigger allows exactly this one UPDATE per record (the chain columns, from NULL) and
nothing else. Records without an organization (a login with an unknown email) form one
chain of their own.

A record committed late (a smaller id after a larger one was already sealed) is simply
sealed later: the chain's order is `chain_seq`, not id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    func,
    select,
    text,
)

from ledger_core import canonical_json
from ledger_core.audit_chain import (
    GENESIS_HASH,
    AuditRecord,
    BrokenLink,
    ChainCheck,
    SealedRecord,
    seal,
)
from ledger_core.persistence.arrays import pg_array
from ledger_core.persistence.tables import audit_logs

SEAL_BATCH = 500
VERIFY_CHUNK = 2000

_SEAL = text("""
    UPDATE audit_logs AS a SET chain_seq = v.seq, prev_hash = v.prev, hash = v.hash
    FROM unnest(CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]), CAST(:prevs AS text[]),
                CAST(:hashes AS text[])) AS v(id, seq, prev, hash)
    WHERE a.id = v.id AND a.hash IS NULL
""")

_UNSEALED_ORGANIZATIONS = text("""
    SELECT DISTINCT organization_id FROM (
        SELECT organization_id FROM audit_logs WHERE hash IS NULL ORDER BY id LIMIT 10000
    ) AS waiting
""")


def chain_lock_key(organization_id: UUID | None) -> int:
    """The advisory lock key of one organization's chain (signed 64-bit)."""
    name = f"vaultcraft-audit-chain:{organization_id or 'system'}"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _of(organization_id: UUID | None) -> ColumnElement[bool]:
    column = audit_logs.c.organization_id
    return column.is_(None) if organization_id is None else column == organization_id


_RECORD_COLUMNS = (
    audit_logs.c.id,
    cast(audit_logs.c.actor_id, Text),
    audit_logs.c.action,
    audit_logs.c.resource_type,
    audit_logs.c.resource_id,
    audit_logs.c.client_address,
    audit_logs.c.user_agent,
    audit_logs.c.request_id,
    cast(audit_logs.c.details, Text),
    audit_logs.c.created_at,
)
"""What `_record` reads, in its order. The organization is the chain's, so it is not read.
The actor comes as the text the chain hashes (PostgreSQL writes a uuid as `str(UUID)`
does); the details as JSON text, which `canonical_json.loads` reads several times faster
than the driver's `json.loads`, to the same value."""


def _text(organization_id: UUID | None) -> str | None:
    return None if organization_id is None else str(organization_id)


def _record(organization: str | None, row: Sequence[Any]) -> AuditRecord:
    """The record of a row of `_RECORD_COLUMNS` (and perhaps more after them)."""
    id_, actor_id, action, resource_type, resource_id, client_address, user_agent = row[:7]
    request_id, details, created_at = row[7:10]
    details = canonical_json.loads(details)
    return AuditRecord(
        id_,
        organization,
        actor_id,
        action,
        resource_type,
        resource_id,
        client_address,
        user_agent,
        request_id,
        details if type(details) is dict else dict(details),
        created_at,
    )


_LINK_COLUMNS = (audit_logs.c.chain_seq, audit_logs.c.prev_hash, audit_logs.c.hash)


def _sealed(organization: str | None, row: Sequence[Any]) -> SealedRecord:
    """The sealed record of a row of `_RECORD_COLUMNS` and then `_LINK_COLUMNS`."""
    chain_seq, prev_hash, hash_ = row[10:13]
    return SealedRecord(_record(organization, row), chain_seq, prev_hash, hash_)


def unsealed_organizations(conn: Connection) -> list[UUID | None]:
    """Organizations (None: records without one) that have records waiting to be sealed."""
    return [row[0] for row in conn.execute(_UNSEALED_ORGANIZATIONS)]


@dataclass(frozen=True)
class _ChainQueries:
    """The sealer's reads of one chain, built once rather than on every round (building a
    statement and its cache key costs more than running it). `:organization_id` and
    `:limit` are bound when they run."""

    head: Select[Any]
    waiting: Select[Any]

    @classmethod
    def of(cls, in_chain: ColumnElement[bool]) -> _ChainQueries:
        head = (
            select(audit_logs.c.chain_seq, audit_logs.c.hash)
            .where(in_chain, audit_logs.c.chain_seq.is_not(None))
            .order_by(audit_logs.c.chain_seq.desc())
            .limit(1)
        )
        waiting = (
            select(*_RECORD_COLUMNS)
            .where(in_chain, audit_logs.c.hash.is_(None))
            .order_by(audit_logs.c.id)
            .limit(bindparam("limit", type_=Integer))
        )
        return cls(head, waiting)


_ORGANIZATION_CHAIN = _ChainQueries.of(
    audit_logs.c.organization_id
    == bindparam("organization_id", type_=audit_logs.c.organization_id.type)
)
_SYSTEM_CHAIN = _ChainQueries.of(audit_logs.c.organization_id.is_(None))
_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


def _queries(organization_id: UUID | None) -> _ChainQueries:
    return _SYSTEM_CHAIN if organization_id is None else _ORGANIZATION_CHAIN


def chain_head(conn: Connection, organization_id: UUID | None) -> tuple[int, str]:
    """The chain's last `(chain_seq, hash)`; `(0, GENESIS_HASH)` for a chain not begun."""
    query = _queries(organization_id).head
    head = conn.execute(query, {"organization_id": organization_id}).one_or_none()
    return (0, GENESIS_HASH) if head is None else (head.chain_seq, head.hash)


def hash_at(conn: Connection, organization_id: UUID | None, chain_seq: int) -> str | None:
    """The stored hash of one record of a chain (None if the chain has no such record)."""
    return conn.scalar(
        select(audit_logs.c.hash).where(_of(organization_id), audit_logs.c.chain_seq == chain_seq)
    )


def sealed_chains(conn: Connection) -> list[UUID | None]:
    """Every organization (None: records without one) with sealed records."""
    return [
        row[0]
        for row in conn.execute(
            text("""
                SELECT NULL::uuid WHERE EXISTS (
                    SELECT 1 FROM audit_logs WHERE organization_id IS NULL AND chain_seq IS NOT NULL)
                UNION ALL
                SELECT o.id FROM organizations o WHERE EXISTS (
                    SELECT 1 FROM audit_logs a WHERE a.organization_id = o.id
                      AND a.chain_seq IS NOT NULL)
            """)
        )
    ]


def seal_organization(
    conn: Connection, organization_id: UUID | None, limit: int = SEAL_BATCH
) -> int | None:
    """Seal up to `limit` waiting records of one organization in the caller's transaction.

    Returns how many were sealed, or None if another sealer holds the chain right now.
    """
    key = chain_lock_key(organization_id)
    if not conn.scalar(_LOCK, {"key": key}):
        return None
    last_seq, last_hash = chain_head(conn, organization_id)
    query = _queries(organization_id).waiting
    rows = conn.execute(query, {"organization_id": organization_id, "limit": limit}).all()
    organization = _text(organization_id)
    records = [_record(organization, row) for row in rows]
    seals = seal(records, last_seq, last_hash)
    if seals:
        conn.execute(
            _SEAL,
            {
                "ids": pg_array(r.id for r in records),
                "seqs": pg_array(s.chain_seq for s in seals),
                "prevs": pg_array(s.prev_hash for s in seals),
                "hashes": pg_array(s.hash for s in seals),
            },
        )
    return len(seals)


@dataclass(frozen=True)
class ChainReport:
    verified: bool
    records_checked: int
    unsealed_records: int
    first_broken: BrokenLink | None

    def as_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "records_checked": self.records_checked,
            "unsealed_records": self.unsealed_records,
            "first_broken": None if self.first_broken is None else self.first_broken.as_json(),
        }


def verify_chain(conn: Connection, organization_id: UUID | None) -> ChainReport:
    """Walk one organization's sealed records in chain order and report the first break.

    Reads in chunks along the `(organization_id, chain_seq)` index, so memory stays flat
    however long the chain is.
    """
    check = ChainCheck()
    after = 0
    organization = _text(organization_id)
    while True:
        rows = conn.execute(
            select(*_RECORD_COLUMNS, *_LINK_COLUMNS)
            .where(_of(organization_id), audit_logs.c.chain_seq > after)
            .order_by(audit_logs.c.chain_seq)
            .limit(VERIFY_CHUNK)
        ).all()
        sealed = [_sealed(organization, row) for row in rows]
        if not check.feed(sealed) or len(sealed) < VERIFY_CHUNK:
            break
        after = sealed[-1].chain_seq
    unsealed = conn.scalar(
        select(func.count())
        .select_from(audit_logs)
        .where(_of(organization_id), audit_logs.c.hash.is_(None))
    )
    return ChainReport(
        verified=check.broken is None,
        records_checked=check.checked,
        unsealed_records=int(unsealed or 0),
        first_broken=check.broken,
    )
