"""Signed heads of the audit chains: what anchors a chain outside the database.

Whoever can rewrite `audit_logs` can also recompute every hash of a chain. What they
cannot do is sign: each time a chain is sealed further, its new head (last `chain_seq`
and `hash`) is signed with an Ed25519 key that lives outside the database and published
on a Redis stream. A rewritten chain then no longer ends in, or passes through, the hash
of a head that was published, and a head signed by any other key is refused.

The signed message names the database as well, so heads of several databases sharing
one Redis never vouch for each other's chains. Pure functions; keys are loaded by
`runtime.audit_keys` and heads are published and read by `workers.audit_heads`.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SYSTEM_CHAIN = "system"
"""The chain of records without an organization."""


def chain_name(organization_id: UUID | None) -> str:
    return SYSTEM_CHAIN if organization_id is None else str(organization_id)


def chain_organization(chain: str) -> UUID | None:
    return None if chain == SYSTEM_CHAIN else UUID(chain)


@dataclass(frozen=True)
class SignedHead:
    database: str
    chain: str
    chain_seq: int
    hash: str
    sealed_at: str
    signature: str
    """Base64 of the Ed25519 signature of `message()`."""

    def message(self) -> bytes:
        fields = (self.database, self.chain, str(self.chain_seq), self.hash, self.sealed_at)
        return "\n".join(("vaultcraft-audit-head/v1", *fields)).encode()

    def fields(self) -> dict[str, str]:
        """The head as flat string fields (one Redis stream entry)."""
        return {key: str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> SignedHead:
        return cls(
            database=fields["database"],
            chain=fields["chain"],
            chain_seq=int(fields["chain_seq"]),
            hash=fields["hash"],
            sealed_at=fields["sealed_at"],
            signature=fields["signature"],
        )

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(base64.b64decode(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True


def sign_head(
    key: Ed25519PrivateKey, database: str, chain: str, chain_seq: int, hash_: str, sealed_at: str
) -> SignedHead:
    unsigned = SignedHead(database, chain, chain_seq, hash_, sealed_at, "")
    signature = base64.b64encode(key.sign(unsigned.message())).decode()
    return SignedHead(database, chain, chain_seq, hash_, sealed_at, signature)
