"""What reconciliation looks for and what it reports, free of I/O.

A reconciliation run compares the ledger with itself: stored balances against the entries
that produced them, each transaction's debits against its credits, every organization's
books against zero. It never repairs anything; it says where the ledger disagrees with
itself, precisely enough that a person can find the row.

Every discrepancy carries `expected` and `actual` in minor units (or counts, where noted
on the kind), plus whichever of organization, wallet, transaction, settlement, entry and
currency locate it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

DRIFT_EVENT = "reconciliation.drift_detected"
EVENT_DISCREPANCY_LIMIT = 100
"""An event lists at most this many discrepancies; the run's own records list them all."""


class Mode(StrEnum):
    """How much of the ledger a run reads."""

    INCREMENTAL = "INCREMENTAL"
    """Only wallets with entries past their checkpoint, and transactions touching them."""
    FULL = "FULL"
    """Every wallet, entry and transaction, rewriting the checkpoints."""

    @classmethod
    def parse(cls, value: str) -> Mode:
        try:
            return cls(value.strip().upper())
        except ValueError as exc:
            raise ValueError(f"unknown reconciliation mode {value!r}") from exc


class Kind(StrEnum):
    """Kinds of discrepancy, with what `expected` and `actual` mean for each."""

    BALANCE_MISMATCH = "balance_mismatch"
    """Stored balance differs from credits - debits. expected: from entries; actual: stored."""
    BALANCE_CHAIN_BROKEN = "balance_chain_broken"
    """An entry's balance_after is not the previous one +/- its amount. Reported at the
    wallet's first broken entry; expected: the running balance; actual: its balance_after."""
    UNBALANCED_TRANSACTION = "unbalanced_transaction"
    """A transaction's entries in one organization and currency do not balance (an entry is
    missing, doubled or altered). expected: debits; actual: credits."""
    UNBALANCED_SETTLEMENT = "unbalanced_settlement"
    """The same for a settlement's entries. expected: debits; actual: credits."""
    POSTED_WITHOUT_ENTRIES = "posted_without_entries"
    """A COMPLETED transaction has no entries in the books of one of its organizations.
    expected: the transaction's amount; actual: 0."""
    UNPOSTED_WITH_ENTRIES = "unposted_with_entries"
    """Entries belong to a transaction that is not COMPLETED. expected: 0 entries;
    actual: how many there are."""
    ORGANIZATION_SUM_NONZERO = "organization_sum_nonzero"
    """An organization's wallets in one currency do not sum to zero. expected: 0."""
    LEDGER_SUM_NONZERO = "ledger_sum_nonzero"
    """All wallets in one currency do not sum to zero. expected: 0. Always accompanied by
    an organization_sum_nonzero, since the ledger's sum is the sum of its organizations'."""
    OVERDRAFT = "overdraft"
    """A wallet other than SYSTEM or CLEARING is below minus its overdraft limit, open holds
    counted. expected: -overdraft_limit; actual: balance - held."""
    HELD_MISMATCH = "held_mismatch"
    """A wallet's `held` is not the sum of its open (HELD) holds. expected: that sum;
    actual: held."""
    STUCK_PENDING = "stuck_pending"
    """Transfers of an organization waited in PENDING past the rescue window; they were
    re-enqueued. transaction_id: the oldest; expected: 0 transfers; actual: how many."""


@dataclass(frozen=True)
class Discrepancy:
    """One place where the ledger disagrees with itself."""

    kind: Kind
    organization_id: UUID | None = None
    wallet_id: UUID | None = None
    transaction_id: UUID | None = None
    settlement_id: UUID | None = None
    entry_id: int | None = None
    currency: str | None = None
    expected: int | None = None
    actual: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, used in events and API responses."""
        return {
            "kind": self.kind.value,
            "organization_id": _str(self.organization_id),
            "wallet_id": _str(self.wallet_id),
            "transaction_id": _str(self.transaction_id),
            "settlement_id": _str(self.settlement_id),
            "entry_id": self.entry_id,
            "currency": self.currency,
            "expected": self.expected,
            "actual": self.actual,
        }


@dataclass(frozen=True)
class Checkpoint:
    """A wallet verified up to and including entry `last_entry_id`, at `balance`."""

    wallet_id: UUID
    last_entry_id: int
    balance: int


@dataclass(frozen=True)
class Findings:
    """What the checks read and found in one consistent snapshot of the ledger."""

    mode: Mode
    wallets_checked: int
    entries_checked: int
    pending_stuck: int
    discrepancies: tuple[Discrepancy, ...]
    checkpoints: tuple[Checkpoint, ...] = field(default=(), repr=False)
    """Checkpoints to write: wallets found clean whose last entry or balance moved."""
    held_back: frozenset[UUID] = frozenset()
    """Clean wallets touched by a flagged transaction: not checkpointed, so re-read."""

    def counts_by_kind(self) -> Mapping[Kind, int]:
        return Counter(d.kind for d in self.discrepancies)


@dataclass(frozen=True)
class RunOutcome:
    """The recorded result of one run; `skipped` when another delivery already ran it."""

    run_id: UUID
    mode: Mode
    status: str
    findings: Findings | None
    duration_s: float
    skipped: bool = False
    error: str | None = None
    requeued: int = 0
    """Stuck PENDING transfers whose posting was re-enqueued by this run."""


def drift_events(
    run_id: UUID, mode: Mode, discrepancies: Iterable[Discrepancy]
) -> list[tuple[UUID, dict[str, Any]]]:
    """One `reconciliation.drift_detected` payload per affected organization.

    Each organization hears only about its own books. Ledger-wide sums carry no
    organization and are left out: the organization whose books are off is reported
    with its own `organization_sum_nonzero`.
    """
    per_org: dict[UUID, list[Discrepancy]] = {}
    for d in discrepancies:
        if d.organization_id is not None:
            per_org.setdefault(d.organization_id, []).append(d)
    events = []
    for org, found in sorted(per_org.items(), key=lambda item: str(item[0])):
        events.append(
            (
                org,
                {
                    "run_id": str(run_id),
                    "mode": mode.value,
                    "discrepancy_count": len(found),
                    "truncated": len(found) > EVENT_DISCREPANCY_LIMIT,
                    "discrepancies": [d.as_dict() for d in found[:EVENT_DISCREPANCY_LIMIT]],
                },
            )
        )
    return events


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)
