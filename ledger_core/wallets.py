"""Wallets and their rules: which types exist, who may create or act on them, how they change.

Pure functions over plain values; callers load the facts (balance, pending transfers)
under a row lock and ask these rules what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from ledger_core.accounts import Principal
from ledger_core.errors import (
    DomainError,
    Forbidden,
    InvalidStatusTransition,
    OverdraftInUse,
    WalletNotEmpty,
)
from ledger_core.money import format_amount, parse_amount
from ledger_core.timestamps import rfc3339


class WalletType(StrEnum):
    PRIMARY = "PRIMARY"
    BONUS = "BONUS"
    SYSTEM = "SYSTEM"
    CLEARING = "CLEARING"


class WalletStatus(StrEnum):
    ACTIVE = "ACTIVE"
    LOCKED = "LOCKED"
    CLOSED = "CLOSED"


MAY_GO_NEGATIVE = frozenset({WalletType.SYSTEM, WalletType.CLEARING})
"""Money enters and leaves the ledger through these; every other wallet stays at or above 0."""

USER_WALLET_TYPES = frozenset({WalletType.PRIMARY, WalletType.BONUS})
"""Types a wallet owned by a user can have; the others belong to the organization."""


def may_go_negative(wallet_type: WalletType) -> bool:
    return wallet_type in MAY_GO_NEGATIVE


@dataclass(frozen=True)
class Wallet:
    id: UUID
    organization_id: UUID
    user_id: UUID | None
    type: WalletType
    currency: str
    status: WalletStatus
    balance: int
    pending_out: int
    """Minor units promised away by this wallet's PENDING outgoing transfers."""
    name: str | None
    created_at: datetime
    updated_at: datetime
    held: int = 0
    """Minor units reserved by this wallet's open holds."""
    overdraft_limit: int = 0
    """How far below zero the wallet may go (0: not at all)."""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def available_balance(self) -> int:
        """What may still be spent: less PENDING outgoing transfers and open holds, plus the
        overdraft limit."""
        return self.balance - self.pending_out - self.held + self.overdraft_limit

    def as_json(self) -> dict[str, Any]:
        """The wallet as the API and its events show it; money as decimal strings."""
        return {
            "id": str(self.id),
            "organization_id": str(self.organization_id),
            "user_id": None if self.user_id is None else str(self.user_id),
            "type": self.type.value,
            "currency": self.currency,
            "status": self.status.value,
            "balance": format_amount(self.balance, self.currency),
            "available_balance": format_amount(self.available_balance, self.currency),
            "held": format_amount(self.held, self.currency),
            "overdraft_limit": format_amount(self.overdraft_limit, self.currency),
            "name": self.name,
            "metadata": dict(self.metadata),
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


def wallet_owner(
    principal: Principal, wallet_type: WalletType, requested_user_id: UUID | None
) -> UUID | None:
    """Who a new wallet belongs to, or why the caller may not create it.

    Anyone opens PRIMARY and BONUS wallets for themselves; an admin may open them for
    another user of the organization (the caller checks that user exists there). Only an
    admin opens a SYSTEM wallet, which belongs to the organization. CLEARING wallets are
    opened by the ledger itself on the first cross-organization transfer.
    """
    if wallet_type is WalletType.CLEARING:
        raise DomainError("CLEARING wallets are created by the ledger", field="type")
    if wallet_type is WalletType.SYSTEM:
        if not principal.is_admin:
            raise Forbidden("only an organization admin may create a SYSTEM wallet")
        if requested_user_id is not None:
            raise DomainError("a SYSTEM wallet belongs to the organization", field="user_id")
        return None
    owner = requested_user_id or principal.user_id
    if owner != principal.user_id and not principal.is_admin:
        raise Forbidden("only an organization admin may create wallets for other users")
    return owner


def check_may_act(principal: Principal, wallet: Wallet) -> None:
    """A member acts only on their own wallets; an admin on every wallet of the organization.

    The caller has already made sure the wallet is in the principal's organization.
    """
    if not principal.is_admin and wallet.user_id != principal.user_id:
        raise Forbidden("this wallet belongs to someone else")


def check_status_change(wallet: Wallet, target: WalletStatus, *, has_pending: bool) -> bool:
    """Whether changing `wallet` to `target` changes anything; raises if it is not allowed.

    ACTIVE and LOCKED go back and forth. CLOSED needs a zero balance and no PENDING
    transfer touching the wallet, and is final. CLEARING wallets follow the ledger's own
    settlement and are never changed by hand.
    """
    if wallet.status is target:
        return False
    if wallet.type is WalletType.CLEARING:
        raise InvalidStatusTransition("CLEARING wallets are managed by the ledger")
    if wallet.status is WalletStatus.CLOSED:
        raise InvalidStatusTransition("a CLOSED wallet cannot be reopened")
    if target is WalletStatus.CLOSED and (wallet.balance != 0 or wallet.held != 0 or has_pending):
        raise WalletNotEmpty(
            "a wallet closes only at zero balance and with no pending transfer or open hold",
            field="status",
        )
    return True


_ZERO_RE = re.compile(r"0+(\.0+)?")


def parse_overdraft_limit(wallet: Wallet, value: str) -> int:
    """The overdraft limit asked for `wallet`, in minor units, or why it cannot have it.

    SYSTEM and CLEARING wallets may go negative already; a limit below what the wallet
    already spends past zero (with its open holds) is `overdraft_in_use`.
    """
    if may_go_negative(wallet.type):
        raise DomainError(
            f"{wallet.type.value} wallets have no overdraft limit", field="overdraft_limit"
        )
    limit = (
        0
        if _ZERO_RE.fullmatch(value)
        else parse_amount(value, wallet.currency, field="overdraft_limit")
    )
    if wallet.balance - wallet.held < -limit:
        raise OverdraftInUse(
            "the wallet already uses more overdraft than that", field="overdraft_limit"
        )
    return limit
