"""Sealing audit records into each organization's hash chain, and checking the chain.

Records are written by whoever audits an action and never change (the database refuses
every UPDATE and DELETE of `audit_logs`), so writers never contend on a chain head. A
sealer (a loop in the relay process) later gives each record its place in its
organization's chain: one insert-only `audit_seals` row. Records without an organization
(a login with an unknown email) form one chain of their own.

The sealer reads records in the order of the transaction that wrote them, `(txid, id)`,
after the last record it sealed (`audit_seal_cursor`), and only records whose transaction
ended before its read began (`txid` below the read's snapshot xmin). Every record it has
not yet seen therefore comes after the cursor: one that commits late was still running at
the read, so its `txid` is at least that snapshot's xmin, above every `txid` sealed so
far. The cursor row is also the sealers' lock: a second sealer finds it taken and skips
the round. A transaction left open on the server holds sealing back until it ends.

Transaction ids belong to one server. A database restored or replicated onto another
server finds the cursor ahead of that server's ids, and its new records would sort behind
the cursor; the sealer notices (the cursor is at or past its read's xmin, which cannot
happen on the server that wrote it), seals every record without a seal once, in id order,
and starts the cursor again from the new server's xmin. Each read also skips a record that
already has a seal, so a record is never sealed twice whatever the cursor says.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    Select,
    Text,
    bindparam,
    cast,
    exists,
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
from ledger_core.persistence.arrays import pg_array, pg_uuid_array
from ledger_core.persistence.tables import audit_logs, audit_seals

log = logging.getLogger("vaultcraft.audit")

SEAL_BATCH = 1000
VERIFY_CHUNK = 2000

_CURSOR = text("""
    SELECT txid::text, record_id, pg_snapshot_xmin(pg_current_snapshot())::text AS horizon
    FROM audit_seal_cursor FOR UPDATE SKIP LOCKED
""")

_MOVE_CURSOR = text("UPDATE audit_seal_cursor SET txid = CAST(:txid AS xid8), record_id = :id")

_SEAL = text("""
    INSERT INTO audit_seals (record_id, organization_id, chain_seq, prev_hash, hash)
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:organizations AS uuid[]),
                         CAST(:seqs AS bigint[]), CAST(:prevs AS text[]),
                         CAST(:hashes AS text[]))
""")

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
"""What `_record` reads, in its order. The actor comes as the text the chain hashes
(PostgreSQL writes a uuid as `str(UUID)` does); the details as JSON text, which
`canonical_json.loads` reads several times faster than the driver's `json.loads`, to the
same value."""

_SEALED = (
    select(audit_seals.c.record_id)
    .where(audit_seals.c.record_id == audit_logs.c.id)
    .scalar_subquery()
    .is_not(None)
)
"""Whether a record has a seal: one probe of the seals' key for each record read. A scalar
subquery rather than `EXISTS`, which PostgreSQL may instead run as one hashed read of every
seal for the whole statement (it did, from stale statistics, at 88 ms a round of a thousand
records with 300,000 sealed, and more with every record sealed since)."""
_UNSEALED = ~exists().where(audit_seals.c.record_id == audit_logs.c.id)

WAITING_RECORDS = (
    select(
        *_RECORD_COLUMNS,
        audit_logs.c.organization_id,
        cast(audit_logs.c.txid, Text).label("txid"),
        _SEALED.label("sealed"),
    )
    .where(
        audit_logs.c.txid.is_not(None),
        text("(audit_logs.txid, audit_logs.id) > (CAST(:txid AS xid8), :record_id)"),
        text("audit_logs.txid < pg_snapshot_xmin(pg_current_snapshot())"),
    )
    .order_by(audit_logs.c.txid, audit_logs.c.id)
    .limit(bindparam("limit", type_=Integer))
)
"""The records after the cursor whose transactions had all ended when the read began, and
whether each already has a seal (`_SEALED`)."""

_STRANDED = (
    select(*_RECORD_COLUMNS, audit_logs.c.organization_id)
    .where(
        audit_logs.c.id > bindparam("after", type_=Integer),
        text("audit_logs.txid < CAST(:horizon AS xid8)"),
        _UNSEALED,
    )
    .order_by(audit_logs.c.id)
    .limit(bindparam("limit", type_=Integer))
)
"""After a move to another server: the records without a seal whose transactions ended
before `:horizon`, in id order from `:after`."""

OLDEST_UNSEALED_AGE_SQL = """
    SELECT extract(epoch FROM now() - min(next.created_at)) FROM (
        SELECT a.id, a.created_at FROM audit_logs a
        WHERE a.txid IS NOT NULL
          AND (a.txid, a.id) > ((SELECT txid FROM audit_seal_cursor),
                                (SELECT record_id FROM audit_seal_cursor))
        ORDER BY a.txid, a.id LIMIT 100
    ) AS next
    WHERE NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.record_id = next.id)
"""
"""Seconds since the oldest of the first hundred committed records past the cursor was
written (NULL: none waits): an index seek into `ix_audit_logs_txid_id`. It grows while the
sealer is down, and while a transaction left open on the server keeps the sealer from
reading past it. (Past the cursor, a record can have a seal only after the database moved
to another server; the limit keeps such records from turning the seek into a scan.)"""


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


_LINK_COLUMNS = (
    audit_logs.c.organization_id,
    audit_seals.c.chain_seq,
    audit_seals.c.prev_hash,
    audit_seals.c.hash,
    audit_seals.c.record_id,
)


def _sealed(row: Sequence[Any]) -> SealedRecord:
    """The sealed record of a row of `_RECORD_COLUMNS` and then `_LINK_COLUMNS`.

    The record is hashed with its own organization, so a record moved to another tenant no
    longer matches the seal of the chain it was sealed in."""
    organization_id, chain_seq, prev_hash, hash_ = row[10:14]
    return SealedRecord(_record(_text(organization_id), row), chain_seq, prev_hash, hash_)


def _of(column: ColumnElement[Any], organization_id: object) -> ColumnElement[bool]:
    """`column` is the chain's organization (None: the chain of records without one)."""
    return column.is_(None) if organization_id is None else column == organization_id


def _head(organization_id: object) -> Select[Any]:
    return (
        select(audit_seals.c.chain_seq, audit_seals.c.hash)
        .where(_of(audit_seals.c.organization_id, organization_id))
        .order_by(audit_seals.c.chain_seq.desc())
        .limit(1)
    )


_ORGANIZATION_HEAD = _head(bindparam("organization_id", type_=audit_seals.c.organization_id.type))
_SYSTEM_HEAD = _head(None)
"""A chain's head, built once rather than on every round (building a statement and its
cache key costs more than running it)."""


def chain_head(conn: Connection, organization_id: UUID | None) -> tuple[int, str]:
    """The chain's last `(chain_seq, hash)`; `(0, GENESIS_HASH)` for a chain not begun."""
    query = _SYSTEM_HEAD if organization_id is None else _ORGANIZATION_HEAD
    head = conn.execute(query, {"organization_id": organization_id}).one_or_none()
    return (0, GENESIS_HASH) if head is None else (head.chain_seq, head.hash)


def hash_at(conn: Connection, organization_id: UUID | None, chain_seq: int) -> str | None:
    """The stored hash of one record of a chain (None if the chain has no such record)."""
    return conn.scalar(
        select(audit_seals.c.hash)
        .join(audit_logs, audit_logs.c.id == audit_seals.c.record_id)
        .where(
            _of(audit_seals.c.organization_id, organization_id),
            audit_seals.c.chain_seq == chain_seq,
        )
    )


def sealed_chains(conn: Connection) -> list[UUID | None]:
    """Every organization (None: records without one) with sealed records."""
    return [
        row[0]
        for row in conn.execute(
            text("""
                SELECT NULL::uuid WHERE EXISTS (
                    SELECT 1 FROM audit_seals WHERE organization_id IS NULL)
                UNION ALL
                SELECT o.id FROM organizations o WHERE EXISTS (
                    SELECT 1 FROM audit_seals s WHERE s.organization_id = o.id)
            """)
        )
    ]


@dataclass(frozen=True)
class SealRound:
    """What one call of `seal_waiting` sealed: how many records, and whose chains grew."""

    sealed: int
    grown: list[UUID | None]
    read: int = 0
    """Records read (the sealed ones among them too): a full batch means more may wait."""


def seal_waiting(conn: Connection, limit: int = SEAL_BATCH) -> SealRound | None:
    """Seal up to `limit` waiting records, in the caller's transaction.

    Returns None if another sealer holds the cursor right now. After a move to another
    server (see the module's docstring) the first call seals every record left without a
    seal, however many, and moves the cursor to the new server's ids.
    """
    cursor = conn.execute(_CURSOR).one_or_none()
    if cursor is None:
        return None
    if int(cursor.txid) >= int(cursor.horizon):
        return _seal_stranded(conn, cursor.horizon, limit)
    params = {"txid": cursor.txid, "record_id": cursor.record_id, "limit": limit}
    rows = conn.execute(WAITING_RECORDS, params).all()
    if not rows:
        return SealRound(0, [])
    fresh = [row for row in rows if not row.sealed]
    grown = _seal_rows(conn, fresh) if fresh else []
    conn.execute(_MOVE_CURSOR, {"txid": rows[-1].txid, "id": rows[-1].id})
    return SealRound(len(fresh), grown, len(rows))


def _seal_stranded(conn: Connection, horizon: str, limit: int) -> SealRound:
    """Seal, in id order, every record without a seal whose transaction ended before
    `horizon`; then restart the cursor at `horizon`, before every record still to come."""
    log.warning(
        "The audit seal cursor is ahead of this server's transaction ids (the database was"
        " restored or moved): sealing every record left without a seal, in id order."
    )
    sealed, grown, after = 0, set[UUID | None](), 0
    while True:
        params = {"after": after, "horizon": horizon, "limit": limit}
        rows = conn.execute(_STRANDED, params).all()
        if rows:
            grown.update(_seal_rows(conn, rows))
            sealed, after = sealed + len(rows), rows[-1].id
        if len(rows) < limit:
            break
    conn.execute(_MOVE_CURSOR, {"txid": horizon, "id": 0})
    return SealRound(sealed, list(grown), read=limit)  # a full read: go on from the new cursor


def _seal_rows(conn: Connection, rows: Sequence[Row[Any]]) -> list[UUID | None]:
    """Seal `rows` (of `_RECORD_COLUMNS`, then the organization), each chain in their
    order after its head; returns the organizations whose chains grew."""
    chains: dict[UUID | None, list[Row[Any]]] = {}
    for row in rows:
        chains.setdefault(row.organization_id, []).append(row)
    ids: list[int] = []
    organizations: list[UUID | None] = []
    seqs: list[int] = []
    prevs: list[str] = []
    hashes: list[str] = []
    for organization_id, chain in chains.items():
        organization = _text(organization_id)
        records = [_record(organization, row) for row in chain]
        links = seal(records, *chain_head(conn, organization_id))
        for record, link in zip(records, links, strict=True):
            ids.append(record.id)
            organizations.append(organization_id)
            seqs.append(link.chain_seq)
            prevs.append(link.prev_hash)
            hashes.append(link.hash)
    conn.execute(
        _SEAL,
        {
            "ids": pg_array(ids),
            "organizations": pg_uuid_array(organizations),
            "seqs": pg_array(seqs),
            "prevs": pg_array(prevs),
            "hashes": pg_array(hashes),
        },
    )
    return list(chains)


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

    Reads in chunks along the seals' `(organization_id, chain_seq)` index, so memory stays
    flat however long the chain is. A seal whose record is gone breaks the chain there,
    and a record removed with its seal leaves a gap in `chain_seq`, which breaks the link
    at the next record.
    """
    check = ChainCheck()
    after = 0
    while True:
        rows = conn.execute(
            select(*_RECORD_COLUMNS, *_LINK_COLUMNS)
            .select_from(
                audit_seals.outerjoin(audit_logs, audit_logs.c.id == audit_seals.c.record_id)
            )
            .where(
                _of(audit_seals.c.organization_id, organization_id), audit_seals.c.chain_seq > after
            )
            .order_by(audit_seals.c.chain_seq)
            .limit(VERIFY_CHUNK)
        ).all()
        for row in rows:
            if row.id is None:
                check.missing(row.record_id, row.chain_seq, row.hash)
            else:
                check.feed([_sealed(row)])
            if check.broken is not None:
                break
        if check.broken is not None or len(rows) < VERIFY_CHUNK:
            break
        after = rows[-1].chain_seq
    unsealed = conn.scalar(
        select(func.count())
        .select_from(audit_logs)
        .where(
            _of(audit_logs.c.organization_id, organization_id),
            _UNSEALED,
        )
    )
    return ChainReport(
        verified=check.broken is None,
        records_checked=check.checked,
        unsealed_records=int(unsealed or 0),
        first_broken=check.broken,
    )
