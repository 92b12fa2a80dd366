"""Posting rules: turn a batch of pending transfers into balanced ledger entries.

Pure domain logic, no I/O. The caller loads the batch (in submission order) and the
current state of every wallet it touches, already locked; `plan_postings` decides each
transfer's fate in order, so a later transfer sees the balances left by earlier ones, and
returns what to write: entries with running balances, final balances and outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter
from typing import Protocol
from uuid import UUID

from ledger_core.money import MAX_MINOR_UNITS
from ledger_core.wallets import MAY_GO_NEGATIVE, WalletStatus

CREDIT = "CREDIT"
DEBIT = "DEBIT"
MIN_MINOR_UNITS = -(2**63)
"""Balances are stored in signed 64-bit columns: a result outside this range cannot be
written, and a transfer that would produce one fails instead of failing its whole batch."""


@dataclass(slots=True)
class WalletState:
    id: UUID
    organization_id: UUID
    type: str
    currency: str
    status: str
    balance: int
    held: int = 0
    overdraft_limit: int = 0

    @property
    def may_go_negative(self) -> bool:
        return self.type in MAY_GO_NEGATIVE

    @property
    def available(self) -> int:
        """What may still be spent: the balance less open holds, plus any overdraft."""
        return self.balance - self.held + self.overdraft_limit


@dataclass(frozen=True, slots=True)
class Leg:
    """One posting of a multi-leg transaction: a wallet pays a wallet, in its currency.

    A leg into another organization is routed like a cross-organization transfer: it
    names the payee organization and the two clearing wallets it moves through (the
    payer's for the payee, the payee's for the payer); a leg inside the payer's
    organization names none of them.
    """

    source_wallet_id: UUID
    destination_wallet_id: UUID
    amount: int
    currency: str
    destination_organization_id: UUID | None = None
    source_clearing_wallet_id: UUID | None = None
    destination_clearing_wallet_id: UUID | None = None

    @property
    def cross_org(self) -> bool:
        return self.destination_organization_id is not None


@dataclass(frozen=True, slots=True)
class PendingTransfer:
    id: UUID
    seq: int
    organization_id: UUID
    destination_organization_id: UUID
    kind: str
    source_wallet_id: UUID
    destination_wallet_id: UUID
    amount: int
    currency: str
    created_at: datetime
    source_clearing_wallet_id: UUID | None = None
    destination_clearing_wallet_id: UUID | None = None
    atomic_group_id: UUID | None = None
    hold_amount: int | None = None
    """Set for a hold: a HELD outcome reserves the amount on the source, writing no entry."""
    postings: tuple[Leg, ...] | None = None
    """Set for a multi-leg transaction: every leg posts, in order, or none does."""
    _legs: tuple[tuple[UUID, str], ...] = field(init=False, repr=False, compare=False)
    _wallet_ids: tuple[UUID, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Work out the legs once: a batch asks for them at every step."""
        legs = self._moves()
        object.__setattr__(self, "_legs", legs)
        object.__setattr__(self, "_wallet_ids", tuple(wallet_id for wallet_id, _ in legs))

    def units(self) -> tuple[PendingTransfer, ...]:
        """What the rules decide one by one: the transfer itself, or each of its legs."""
        if self.postings is None:
            return (self,)
        return tuple(
            replace(
                self,
                source_wallet_id=leg.source_wallet_id,
                destination_wallet_id=leg.destination_wallet_id,
                amount=leg.amount,
                currency=leg.currency,
                destination_organization_id=leg.destination_organization_id or self.organization_id,
                source_clearing_wallet_id=leg.source_clearing_wallet_id,
                destination_clearing_wallet_id=leg.destination_clearing_wallet_id,
                postings=None,
            )
            for leg in self.postings
        )

    def legs(self) -> tuple[tuple[UUID, str], ...]:
        """The wallets this transfer moves, with the direction of each movement.

        A cross-organization transfer balances inside each organization's books: the payer's
        wallet against its clearing wallet for the payee, and the payee's clearing wallet for
        the payer against the payee's wallet.
        """
        return self._legs

    def _moves(self) -> tuple[tuple[UUID, str], ...]:
        if self.postings is not None:
            return tuple(pair for unit in self.units() for pair in unit.legs())
        if self.source_clearing_wallet_id is None or self.destination_clearing_wallet_id is None:
            return ((self.source_wallet_id, DEBIT), (self.destination_wallet_id, CREDIT))
        return (
            (self.source_wallet_id, DEBIT),
            (self.source_clearing_wallet_id, CREDIT),
            (self.destination_clearing_wallet_id, DEBIT),
            (self.destination_wallet_id, CREDIT),
        )

    def wallet_ids(self) -> tuple[UUID, ...]:
        return self._wallet_ids

    def payee_organization_ids(self) -> tuple[UUID, ...]:
        """The other organizations this transfer pays into (each cross-org leg's payee)."""
        return tuple(
            dict.fromkeys(
                unit.destination_organization_id
                for unit in self.units()
                if unit.destination_organization_id != self.organization_id
            )
        )


@dataclass(frozen=True, slots=True)
class Entry:
    transaction_id: UUID
    wallet_id: UUID
    organization_id: UUID
    direction: str
    amount: int
    currency: str
    balance_after: int


@dataclass(frozen=True, slots=True)
class Outcome:
    transfer: PendingTransfer
    status: str
    failure_code: str | None = None
    failure_message: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == "COMPLETED"

    @property
    def succeeded(self) -> bool:
        """Posted or, for a hold, placed."""
        return self.status in ("COMPLETED", "HELD")


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str


class RiskPolicy(Protocol):
    """Extra checks applied at posting time, such as per-organization limits."""

    def check(
        self, transfer: PendingTransfer, wallets: Mapping[UUID, WalletState]
    ) -> Refusal | None:
        """Return a refusal when the transfer breaks a rule, given the balances so far."""

    def record(self, transfer: PendingTransfer) -> None:
        """Account for a transfer that will post, so later ones in the batch see it."""

    def savepoint(self) -> object:
        """Capture the policy's running counters before an atomic batch."""

    def rollback(self, savepoint: object) -> None:
        """Forget what was recorded since `savepoint` (an atomic batch failed)."""


@dataclass(slots=True)
class PostingPlan:
    outcomes: list[Outcome] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    balances: dict[UUID, int] = field(default_factory=dict)
    held: dict[UUID, int] = field(default_factory=dict)
    """The open holds of every wallet whose balance or holds the batch changed."""

    @property
    def completed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.completed]


def check_transfer(
    transfer: PendingTransfer, wallets: Mapping[UUID, WalletState]
) -> Refusal | None:
    """The ledger's own rules: wallets exist, are active, match the currency and have funds."""
    found: list[tuple[UUID, WalletState, str]] = []
    for wallet_id, direction in transfer.legs():
        wallet = wallets.get(wallet_id)
        if wallet is None:
            return Refusal("wallet_not_found", f"wallet {wallet_id} does not exist")
        if wallet.status != WalletStatus.ACTIVE:
            return Refusal("wallet_not_active", f"wallet {wallet_id} is {wallet.status}")
        if wallet.currency != transfer.currency:
            return Refusal(
                "currency_mismatch",
                f"wallet {wallet_id} holds {wallet.currency}, not {transfer.currency}",
            )
        found.append((wallet_id, wallet, direction))
    amount = transfer.amount
    for wallet_id, wallet, direction in found:
        if direction == DEBIT and not wallet.may_go_negative and wallet.available < amount:
            return Refusal("insufficient_funds", f"wallet {wallet_id} has insufficient funds")
    return _check_range(amount, found)


def fits_int64(value: int) -> bool:
    return MIN_MINOR_UNITS <= value <= MAX_MINOR_UNITS


def _check_range(amount: int, legs: list[tuple[UUID, WalletState, str]]) -> Refusal | None:
    """Every balance (and so every running balance) the transfer leaves must fit 64 bits."""
    if not fits_int64(amount):
        return Refusal("amount_out_of_range", "the amount does not fit the ledger's range")
    after: dict[UUID, int] = {}
    for wallet_id, wallet, direction in legs:
        before = after.get(wallet_id, wallet.balance)
        after[wallet_id] = before + (amount if direction == CREDIT else -amount)
        if not fits_int64(after[wallet_id]):
            return Refusal(
                "amount_out_of_range",
                f"wallet {wallet_id}'s balance would leave the ledger's 64-bit range",
            )
    return None


def _apply(transfer: PendingTransfer, wallets: Mapping[UUID, WalletState]) -> list[Entry]:
    if transfer.hold_amount is not None:
        wallets[transfer.source_wallet_id].held += transfer.hold_amount
        return []
    return entries_for(transfer, transfer.amount, wallets)


def entries_for(
    transfer: PendingTransfer, amount: int, wallets: Mapping[UUID, WalletState]
) -> list[Entry]:
    """Move `amount` along the transfer's legs, returning the entries with running balances."""
    entries = []
    for wallet_id, direction in transfer.legs():
        wallet = wallets[wallet_id]
        wallet.balance += amount if direction == CREDIT else -amount
        entries.append(
            Entry(
                transaction_id=transfer.id,
                wallet_id=wallet_id,
                organization_id=wallet.organization_id,
                direction=direction,
                amount=amount,
                currency=transfer.currency,
                balance_after=wallet.balance,
            )
        )
    return entries


def _try_post(
    transfer: PendingTransfer, wallets: Mapping[UUID, WalletState], risk: RiskPolicy | None
) -> tuple[Refusal | None, list[Entry]]:
    refusal = check_transfer(transfer, wallets)
    if refusal is None and risk is not None:
        refusal = risk.check(transfer, wallets)
    if refusal is not None:
        return refusal, []
    if risk is not None:
        risk.record(transfer)
    return None, _apply(transfer, wallets)


def _post_units(
    transfer: PendingTransfer,
    wallets: Mapping[UUID, WalletState],
    risk: RiskPolicy | None,
    entries: list[Entry],
) -> Refusal | None:
    """Post a transfer, or each leg of a multi-leg one in turn (a leg sees the balances the
    earlier ones left); the first refusal names its leg. The caller rolls back on refusal."""
    units = transfer.units()
    for n, unit in enumerate(units, start=1):
        refusal, written = _try_post(unit, wallets, risk)
        if refusal is not None:
            if transfer.postings is None:
                return refusal
            return Refusal(refusal.code, f"posting {n} of {len(units)}: {refusal.message}")
        entries.extend(written)
    return None


def group_units(transfers: Sequence[PendingTransfer]) -> Iterable[list[PendingTransfer]]:
    """Single transfers alone; members of one atomic batch together, at their first place."""
    seen: dict[UUID, list[PendingTransfer]] = {}
    order: list[list[PendingTransfer]] = []
    for transfer in transfers:
        if transfer.atomic_group_id is None:
            order.append([transfer])
        elif transfer.atomic_group_id in seen:
            seen[transfer.atomic_group_id].append(transfer)
        else:
            seen[transfer.atomic_group_id] = [transfer]
            order.append(seen[transfer.atomic_group_id])
    return order


def plan_postings(
    transfers: Sequence[PendingTransfer],
    wallets: Mapping[UUID, WalletState],
    risk: RiskPolicy | None = None,
) -> PostingPlan:
    """Decide every transfer of a batch in submission order.

    `wallets` is mutated to the balances after the batch. The members of an atomic batch
    all post or all fail: when one is refused, the balances its siblings moved are put back
    and every member fails.
    """
    plan = PostingPlan()
    holding: set[UUID] = set()
    ordered = sorted(transfers, key=attrgetter("seq"))
    for group in group_units(ordered):
        saved = [
            (wallet, wallet.balance, wallet.held)
            for t in group
            for wid in t.wallet_ids()
            if (wallet := wallets.get(wid)) is not None
        ]
        risk_saved = risk.savepoint() if risk is not None else None
        group_entries: list[Entry] = []
        refused: tuple[PendingTransfer, Refusal] | None = None
        for transfer in group:
            refusal = _post_units(transfer, wallets, risk, group_entries)
            if refusal is not None:
                refused = (transfer, refusal)
                break
        if refused is None:
            plan.entries.extend(group_entries)
            plan.outcomes.extend(Outcome(t, _success(t)) for t in group)
            holding.update(t.source_wallet_id for t in group if t.hold_amount is not None)
            continue
        for wallet, balance, held in saved:
            wallet.balance = balance
            wallet.held = held
        if risk is not None:
            risk.rollback(risk_saved)
        plan.outcomes.extend(_failure(t, refused) for t in group)
    for wallet_id in {entry.wallet_id for entry in plan.entries} | holding:
        wallet = wallets[wallet_id]
        plan.balances[wallet_id] = wallet.balance
        plan.held[wallet_id] = wallet.held
    return plan


def _success(transfer: PendingTransfer) -> str:
    return "COMPLETED" if transfer.hold_amount is None else "HELD"


def _failure(transfer: PendingTransfer, refused: tuple[PendingTransfer, Refusal]) -> Outcome:
    culprit, refusal = refused
    if culprit.id == transfer.id:
        return Outcome(transfer, "FAILED", refusal.code, refusal.message)
    return Outcome(
        transfer,
        "FAILED",
        "atomic_batch_failed",
        f"transfer {culprit.id} of the same atomic batch failed: {refusal.code}",
    )
