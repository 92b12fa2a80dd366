"""The audit trail's hash chain: each organization's records linked like a ledger's pages.

The database already refuses UPDATE and DELETE on `audit_logs`; the chain makes tampering
by anyone who gets around that (a superuser, a restored backup, a disabled trigger)
detectable. Every record of an organization gets, in the order it is sealed, a
`chain_seq` (1, 2, 3, ...), the previous record's hash as `prev_hash` (64 zeros for the
first) and `hash = sha256(prev_hash + canonical JSON of the record)`. Changing, removing
or reordering any record breaks the link at that record and every hash after it.

Canonical JSON (`ledger_core.canonical_json`): keys sorted, no whitespace, UTF-8,
timestamps as RFC 3339 UTC with microseconds, ids as strings. Pure functions; the sealing
and reading live in `ledger_core.persistence.audit.chain`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from ledger_core import canonical_json
from ledger_core.timestamps import rfc3339

GENESIS_HASH = "0" * 64


class AuditRecord(NamedTuple):
    """The fields of an audit record the chain vouches for, its ids as the text it hashes.

    A named tuple, not a frozen dataclass: the sealer builds one per record, and a named
    tuple is built several times faster.
    """

    id: int
    organization_id: str | None
    actor_id: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    client_address: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    created_at: datetime

    def canonical(self, chain_seq: int) -> bytes:
        body = {
            "id": self.id,
            "chain_seq": chain_seq,
            "organization_id": self.organization_id,
            "actor_id": self.actor_id,
            "action": self.action,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "client_address": self.client_address,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "details": self.details,
            "created_at": rfc3339(self.created_at),
        }
        return canonical_json.dumps(body)


class SealedRecord(NamedTuple):
    """A record as stored after sealing: its fields and its place in the chain."""

    record: AuditRecord
    chain_seq: int
    prev_hash: str
    hash: str


class Seal(NamedTuple):
    chain_seq: int
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class BrokenLink:
    """The first record whose stored link does not match what its content implies."""

    id: int
    chain_seq: int
    expected_hash: str
    actual_hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chain_seq": self.chain_seq,
            "expected_hash": self.expected_hash,
            "actual_hash": self.actual_hash,
        }


def record_hash(prev_hash: str, record: AuditRecord, chain_seq: int) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + record.canonical(chain_seq)).hexdigest()


def seal(records: Iterable[AuditRecord], last_seq: int, last_hash: str) -> list[Seal]:
    """Seals for `records`, in order, continuing a chain that ends at (last_seq, last_hash)."""
    seals = []
    for record in records:
        last_seq += 1
        digest = record_hash(last_hash, record, last_seq)
        seals.append(Seal(last_seq, last_hash, digest))
        last_hash = digest
    return seals


@dataclass
class ChainCheck:
    """Walks a chain in `chain_seq` order and remembers the first broken link.

    A record breaks the chain if its `chain_seq` is not the next number (one was removed
    or inserted), if its `prev_hash` is not the previous record's hash, or if its hash is
    not what its own content implies (it was edited).
    """

    checked: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    broken: BrokenLink | None = None

    def missing(self, record_id: int, chain_seq: int, hash_: str) -> None:
        """A seal whose record is gone: the link is broken there (nothing to hash)."""
        if self.broken is None:
            self.broken = BrokenLink(record_id, chain_seq, "", hash_)

    def feed(self, sealed: Iterable[SealedRecord]) -> bool:
        """Check the next records; False once a broken link has been found."""
        for item in sealed:
            if self.broken is not None:
                return False
            self.checked += 1
            expected_seq = self.last_seq + 1
            expected = record_hash(self.last_hash, item.record, expected_seq)
            linked = item.chain_seq == expected_seq and item.prev_hash == self.last_hash
            if not linked or item.hash != expected:
                self.broken = BrokenLink(item.record.id, item.chain_seq, expected, item.hash)
            self.last_seq, self.last_hash = item.chain_seq, item.hash
        return self.broken is None
