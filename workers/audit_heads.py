"""Publishing signed audit chain heads on a Redis stream, and checking chains against them.

The sealer publishes a chain's head after each commit that extends it. The stream lives
outside PostgreSQL, and the heads on it are signed (`ledger_core.audit_heads`), so
`vaultcraft verify` can tell a chain that was rewritten and re-hashed in the database:
its newest published head no longer matches. A head that is lost (Redis down at that
moment) only leaves the records after the previous head unanchored until the next seal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, text

from ledger_core.audit_heads import (
    SignedHead,
    TrustedKeys,
    chain_name,
    chain_organization,
    sign_head,
)
from ledger_core.persistence.audit.chain import hash_at, sealed_chains, verify_chain

HEAD_STREAM = "vaultcraft:audit-heads"
HEAD_STREAM_MAXLEN = 1_000_000
READ_PAGE = 1000


def database_name(conn: Connection) -> str:
    return str(conn.scalar(text("SELECT current_database()")))


def sign_heads(
    key: Ed25519PrivateKey, database: str, heads: Iterable[tuple[UUID | None, int, str]]
) -> list[SignedHead]:
    sealed_at = datetime.now(UTC).isoformat()
    return [
        sign_head(key, database, chain_name(org), seq, hash_, sealed_at)
        for org, seq, hash_ in heads
    ]


def publish_heads(client: redis.Redis, heads: Iterable[SignedHead]) -> None:
    pipe = client.pipeline(transaction=False)
    for head in heads:
        pipe.xadd(HEAD_STREAM, head.fields(), maxlen=HEAD_STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
    pipe.execute()


def _newest_first(client: redis.Redis, database: str) -> Iterator[SignedHead]:
    """This database's published heads, newest first, read a page at a time."""
    upper = "+"
    while True:
        page: list[tuple[bytes, dict[bytes, bytes]]] = client.xrevrange(  # type: ignore[assignment]
            HEAD_STREAM, max=upper, min="-", count=READ_PAGE
        )
        for _entry_id, raw in page:
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if fields.get("database") == database:
                yield SignedHead.from_fields(fields)
        if len(page) < READ_PAGE:
            return
        upper = "(" + _text(page[-1][0])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class AnchorFinding:
    chain: str
    kind: str
    """`broken` (the chain's own links), `head_mismatch` (the chain disagrees with its
    newest signed head), `forged_head` (a published head signed by no trusted key)."""
    chain_seq: int | None
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: audit chain {self.chain} at chain_seq {self.chain_seq}: {self.detail}"


def check_anchors(
    conn: Connection, client: redis.Redis, keys: TrustedKeys
) -> tuple[list[AnchorFinding], int]:
    """Check every sealed chain's links and its newest signed head, believing heads signed
    by any of `keys` (the current key and the retired ones).

    Returns the findings and how many chains were anchored by a published head (a chain
    whose heads were never published is checked for its links only).
    """
    database = database_name(conn)
    waiting = {chain_name(org) for org in sealed_chains(conn)}
    findings: list[AnchorFinding] = []
    anchors: dict[str, SignedHead] = {}
    for head in _newest_first(client, database):
        if keys.signer(head) is None:
            findings.append(
                AnchorFinding(
                    head.chain, "forged_head", head.chain_seq, "signed by no key we trust"
                )
            )
        elif head.chain in waiting:
            anchors[head.chain] = head
            waiting.discard(head.chain)
    for chain in sorted(anchors.keys() | waiting):
        findings.extend(_check_chain(conn, chain, anchors.get(chain)))
    return findings, len(anchors)


def _check_chain(conn: Connection, chain: str, head: SignedHead | None) -> list[AnchorFinding]:
    organization_id = chain_organization(chain)
    report = verify_chain(conn, organization_id)
    broken = report.first_broken
    if broken is not None:
        detail = f"expected hash {broken.expected_hash}, stored {broken.actual_hash}"
        return [AnchorFinding(chain, "broken", broken.chain_seq, detail)]
    if head is None:
        return []
    stored = hash_at(conn, organization_id, head.chain_seq)
    if stored != head.hash:
        detail = f"signed head hash {head.hash}, stored {stored}"
        return [AnchorFinding(chain, "head_mismatch", head.chain_seq, detail)]
    return []
