"""Transfer intents as the API accepts them, before they are stored.

Checks that need only the request and the wallets involved live here; funds, wallet
status and limits are checked at posting time, in submission order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from uuid import UUID

from ledger_core.accounts import Principal
from ledger_core.errors import CurrencyMismatch, DomainError, Forbidden, NotFound, SameWallet
from ledger_core.ids import uuid_text
from ledger_core.posting import Leg


@dataclass(frozen=True)
class TransferIntent:
    idempotency_key: str
    source_wallet_id: UUID
    destination_wallet_id: UUID
    amount: int
    currency: str
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    reverses_transaction_id: UUID | None = None
    reference: str | None = None
    """The caller's own name for the transfer, unique per organization when given."""
    fingerprint: str | None = None
    """Set when the request is not the transfer itself (a reversal asks for "the rest")."""
    hold_expires_in_s: int | None = None
    """Set for a hold: the amount is reserved when posted, and voided after this long."""
    postings: tuple[Leg, ...] | None = None
    """Set for a multi-leg transaction; the other fields then describe its first leg."""

    def legs(self) -> list[TransferIntent]:
        """Each leg as a transfer intent, to be checked like one."""
        return [
            TransferIntent(
                self.idempotency_key,
                leg.source_wallet_id,
                leg.destination_wallet_id,
                leg.amount,
                leg.currency,
            )
            for leg in self.postings or ()
        ]

    def postings_json(self) -> str | None:
        """The legs as `transactions.postings` stores them (minor units)."""
        if self.postings is None:
            return None
        return json.dumps(
            [
                {
                    "source_wallet_id": str(leg.source_wallet_id),
                    "destination_wallet_id": str(leg.destination_wallet_id),
                    "amount": leg.amount,
                    "currency": leg.currency,
                }
                for leg in self.postings
            ]
        )

    def request_hash(self) -> str:
        """A fingerprint of what was asked, to tell a replay from a reused key."""
        if self.fingerprint is not None:
            return self.fingerprint
        asked: dict[str, Any] = {
            "source": uuid_text(self.source_wallet_id),
            "destination": uuid_text(self.destination_wallet_id),
            "amount": self.amount,
            "currency": self.currency,
            "description": self.description,
            "metadata": dict(self.metadata),
            "reverses": None
            if self.reverses_transaction_id is None
            else uuid_text(self.reverses_transaction_id),
        }
        if self.reference is not None:
            asked["reference"] = self.reference
        if self.hold_expires_in_s is not None:
            asked["hold"] = self.hold_expires_in_s
        if self.postings is not None:
            asked["postings"] = self.postings_json()
        return hashlib.sha256(_CANONICAL.encode(asked).encode()).hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
"""The request hash's JSON: keys sorted at every level, no spaces, ASCII only. Stored hashes
depend on every byte of it."""


def batch_fingerprint(intents: Sequence[TransferIntent], *, atomic: bool) -> str:
    """A fingerprint of a whole batch (each item's key and request, in order, and `atomic`),
    to tell a replay of the batch's own `Idempotency-Key` from a reused key."""
    canonical = json.dumps(
        {"atomic": atomic, "items": [[i.idempotency_key, i.request_hash()] for i in intents]},
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class WalletRef:
    """What the gateway needs to know of a wallet to accept a transfer: what never changes
    once the wallet exists (its status does, and posting checks it under the wallet's lock)."""

    id: UUID
    organization_id: UUID
    user_id: UUID | None
    type: str
    currency: str


@dataclass(frozen=True)
class Route:
    """Where an accepted intent moves money: inside one organization or across two."""

    source: WalletRef
    destination: WalletRef

    @cached_property
    def cross_org(self) -> bool:
        """Asked several times while a transfer is stored, compared once."""
        return self.source.organization_id != self.destination.organization_id


def route_intent(
    actor: Principal,
    intent: TransferIntent,
    wallets: Mapping[UUID, WalletRef],
    accepting_orgs: frozenset[UUID],
) -> Route:
    """Check an intent against the wallets it names, as the caller is allowed to see them.

    `accepting_orgs` are the organizations that added the caller's organization as a
    counterparty: only their wallets are visible as destinations across organizations.
    """
    if intent.source_wallet_id == intent.destination_wallet_id:
        raise SameWallet(
            "source and destination are the same wallet", field="destination_wallet_id"
        )
    source = wallets.get(intent.source_wallet_id)
    if source is None or source.organization_id != actor.organization_id:
        raise NotFound("source wallet not found", field="source_wallet_id")
    destination = wallets.get(intent.destination_wallet_id)
    if destination is None or (
        destination.organization_id != actor.organization_id
        and destination.organization_id not in accepting_orgs
    ):
        raise NotFound("destination wallet not found", field="destination_wallet_id")
    if source.type == "CLEARING" or destination.type == "CLEARING":
        raise Forbidden(
            "clearing wallets move only through cross-organization postings and settlement"
        )
    if not actor.is_admin and (source.type == "SYSTEM" or source.user_id != actor.user_id):
        raise Forbidden("you may only move money out of your own wallets", field="source_wallet_id")
    if destination.organization_id != actor.organization_id and destination.type == "SYSTEM":
        raise NotFound("destination wallet not found", field="destination_wallet_id")
    if not (source.currency == destination.currency == intent.currency):
        raise CurrencyMismatch(
            f"source holds {source.currency}, destination holds {destination.currency},"
            f" request is in {intent.currency}",
            field="currency",
        )
    return Route(source, destination)


@dataclass(frozen=True)
class Stored:
    """A transaction row as stored, and whether this request only replayed it."""

    row: Mapping[str, Any]
    replayed: bool


class BatchRefused(DomainError):
    """A batch where some items are refused is refused whole; each refusal is listed."""

    code = "batch_invalid"

    def __init__(self, failures: list[tuple[int, DomainError]]) -> None:
        super().__init__(f"{len(failures)} of the transfers were refused; nothing was stored")
        self.failures = failures
