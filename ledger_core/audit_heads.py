"""Signed heads of the audit chains: what anchors a chain outside the database.

Whoever can rewrite `audit_logs` can also recompute every hash of a chain. What they
cannot do is sign: each time a chain is sealed further, its new head (last `chain_seq`
and `hash`) is signed with an Ed25519 key that lives outside the database and published
on a Redis stream. A rewritten chain then no longer ends in, or passes through, the hash
of a head that was published, and a head signed by any other key is refused.

Keys are rotated without disowning what the old key signed: each head names the key that
signed it (`key_id`, a hint outside the signed message: the signature still decides), and
`vaultcraft verify` trusts the current key and every key retired from signing
(`TrustedKeys`). A head signed by a key in neither is refused like a forged one.

The signed message names the database as well, so heads of several databases sharing
one Redis never vouch for each other's chains. Pure functions; keys are loaded by
`runtime.audit_keys` and heads are published and read by `workers.audit_heads`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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
    key_id: str = ""
    """`key_id` of the key that signed it; empty on heads published before heads named
    their key."""

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
            key_id=fields.get("key_id", ""),
        )

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(base64.b64decode(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True


def key_id(key: Ed25519PublicKey) -> str:
    """A public key's short name: the first 8 bytes of the SHA-256 of its raw bytes, in hex."""
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def sign_head(
    key: Ed25519PrivateKey, database: str, chain: str, chain_seq: int, hash_: str, sealed_at: str
) -> SignedHead:
    unsigned = SignedHead(database, chain, chain_seq, hash_, sealed_at, "")
    signature = base64.b64encode(key.sign(unsigned.message())).decode()
    return SignedHead(
        database, chain, chain_seq, hash_, sealed_at, signature, key_id(key.public_key())
    )


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys whose heads are believed, by `key_id`: the one signing now and
    those retired from signing."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def of(cls, keys: Iterable[Ed25519PublicKey]) -> TrustedKeys:
        return cls({key_id(key): key for key in keys})

    def signer(self, head: SignedHead) -> str | None:
        """The `key_id` of the trusted key that signed `head`, or None. A head that names
        its key is checked with that key alone; one that names none, with each in turn."""
        names = [head.key_id] if head.key_id else list(self.keys)
        for name in names:
            key = self.keys.get(name)
            if key is not None and head.signed_by(key):
                return name
        return None
