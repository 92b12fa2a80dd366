"""Netting cross-organization positions: who owes whom, and the entries that settle it.

Pure domain logic, no I/O. A cross-organization transfer leaves each side holding a
position in a CLEARING wallet kept for the other: the payer's shows what it owes ("due
to", a positive balance), the payee's what it is owed ("due from", negative). Settlement
nets every unsettled transfer of a pair of organizations in one currency into a single
movement of money between them, and posts, in each organization's own books, the entries
that bring its clearing wallet back to zero against its SYSTEM wallet (the wallet through
which money enters and leaves the ledger). Each organization's entries balance on their
own, so each organization's wallets still sum to zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger_core.money import format_amount
from ledger_core.posting import CREDIT, DEBIT
from ledger_core.timestamps import rfc3339_or_none


@dataclass(frozen=True)
class CrossOrgTransfer:
    """What settlement needs of a posted cross-organization transfer, or of one
    cross-organization leg of a multi-leg transaction (`leg`, counted from 1)."""

    id: UUID
    payer_organization_id: UUID
    payee_organization_id: UUID
    amount: int
    posted_at: datetime
    leg: int = 0


@dataclass(frozen=True)
class Netting:
    """The unsettled transfers of one pair and currency, reduced to one net movement.

    `payer` owes `payee` the net amount. With equal flows both ways the net is zero and
    the payer is the organization with the smaller id, so the record stays deterministic.
    """

    payer_organization_id: UUID
    payee_organization_id: UUID
    gross_payer_to_payee: int
    gross_payee_to_payer: int
    transfer_count: int
    window_start: datetime
    window_end: datetime

    @property
    def net_amount(self) -> int:
        return self.gross_payer_to_payee - self.gross_payee_to_payer


def net_transfers(org_a: UUID, org_b: UUID, transfers: Iterable[CrossOrgTransfer]) -> Netting:
    """Net the transfers between `org_a` and `org_b` (any other pair is a bug: refused)."""
    gross = {(org_a, org_b): 0, (org_b, org_a): 0}
    moments: list[datetime] = []
    for t in transfers:
        direction = (t.payer_organization_id, t.payee_organization_id)
        if direction not in gross:
            raise ValueError(f"transfer {t.id} is not between {org_a} and {org_b}")
        if t.amount <= 0:
            raise ValueError(f"transfer {t.id} has a non-positive amount")
        gross[direction] += t.amount
        moments.append(t.posted_at)
    if not moments:
        raise ValueError("nothing to net: no transfers")
    a_to_b, b_to_a = gross[(org_a, org_b)], gross[(org_b, org_a)]
    a_pays = a_to_b > b_to_a or (a_to_b == b_to_a and org_a < org_b)
    payer, payee = (org_a, org_b) if a_pays else (org_b, org_a)
    return Netting(
        payer_organization_id=payer,
        payee_organization_id=payee,
        gross_payer_to_payee=gross[(payer, payee)],
        gross_payee_to_payer=gross[(payee, payer)],
        transfer_count=len(moments),
        window_start=min(moments),
        window_end=max(moments),
    )


@dataclass(frozen=True)
class PairWallets:
    """The four wallets a settlement moves: each side's clearing and SYSTEM wallet."""

    payer_clearing: UUID
    payer_system: UUID
    payee_clearing: UUID
    payee_system: UUID


def settlement_legs(netting: Netting, wallets: PairWallets) -> tuple[tuple[UUID, str], ...]:
    """The movements that settle `netting`, each of `netting.net_amount`; none at zero.

    The payer's clearing wallet stands at +net (due to the payee): a DEBIT brings it to
    zero, and the money leaves the payer's books through its SYSTEM wallet (CREDIT). The
    payee's clearing wallet stands at -net (due from the payer): a CREDIT brings it to
    zero, and the money enters the payee's books through its SYSTEM wallet (DEBIT).
    """
    if netting.net_amount == 0:
        return ()
    return (
        (wallets.payer_clearing, DEBIT),
        (wallets.payer_system, CREDIT),
        (wallets.payee_clearing, CREDIT),
        (wallets.payee_system, DEBIT),
    )


def expected_clearing_balance(netting: Netting, *, payer_side: bool) -> int:
    """The clearing balance the netted transfers left on one side before settlement."""
    return netting.net_amount if payer_side else -netting.net_amount


@dataclass(frozen=True)
class Settlement:
    """A written settlement, as `GET /settlements` and `settlement.completed` show it."""

    id: UUID
    payer_organization_id: UUID
    payee_organization_id: UUID
    currency: str
    gross_payer_to_payee: int
    gross_payee_to_payer: int
    net_amount: int
    transfer_count: int
    window_start: datetime | None
    window_end: datetime | None
    status: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        """Money as decimal strings in major units, times in RFC 3339."""
        return {
            "id": str(self.id),
            "payer_organization_id": str(self.payer_organization_id),
            "payee_organization_id": str(self.payee_organization_id),
            "currency": self.currency,
            "gross_payer_to_payee": format_amount(self.gross_payer_to_payee, self.currency),
            "gross_payee_to_payer": format_amount(self.gross_payee_to_payer, self.currency),
            "net_amount": format_amount(self.net_amount, self.currency),
            "transfer_count": self.transfer_count,
            "window_start": rfc3339_or_none(self.window_start),
            "window_end": rfc3339_or_none(self.window_end),
            "status": self.status,
            "created_at": rfc3339_or_none(self.created_at),
        }
