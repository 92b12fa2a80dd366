"""A wallet's history as the API shows it: its balance at an instant, its statements.

Pure values; `ledger_core.services.history` reads them under one snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger_core.errors import DomainError
from ledger_core.keyset import Keyset
from ledger_core.money import format_amount
from ledger_core.timestamps import rfc3339

ENTRY_COLUMNS = (
    "id",
    "transaction_id",
    "settlement_id",
    "wallet_id",
    "direction",
    "amount",
    "currency",
    "balance_after",
    "created_at",
)
"""The fields of an entry as the API shows it, in order (also the CSV header)."""


def entry_view(entry: dict[str, Any]) -> dict[str, Any]:
    """One ledger entry with money as decimal strings and times in RFC 3339."""
    currency = entry["currency"]
    settlement_id = entry.get("settlement_id")
    return {
        "id": entry["id"],
        "transaction_id": None if entry["transaction_id"] is None else str(entry["transaction_id"]),
        "settlement_id": None if settlement_id is None else str(settlement_id),
        "wallet_id": str(entry["wallet_id"]),
        "direction": entry["direction"],
        "amount": format_amount(entry["amount"], currency),
        "currency": currency,
        "balance_after": format_amount(entry["balance_after"], currency),
        "created_at": rfc3339(entry["created_at"]),
    }


def check_range(start: datetime, end: datetime) -> None:
    """A statement's range runs forward: `from` may not be after `to`."""
    if start > end:
        raise DomainError("`from` is after `to`", field="from")


def entry_row(entry: dict[str, Any]) -> list[Any]:
    """One entry as a CSV row in `ENTRY_COLUMNS` order (blank for none)."""
    view = entry_view(entry)
    return ["" if view[c] is None else view[c] for c in ENTRY_COLUMNS]


@dataclass(frozen=True)
class BalanceAt:
    wallet_id: UUID
    currency: str
    at: datetime
    balance: int
    held: int = 0
    """Reserved by the holds open at `at`."""

    @property
    def available(self) -> int:
        """The balance not reserved by holds. Unlike a wallet's `available_balance` it adds
        no overdraft limit: limits keep no history, so today's may not have applied."""
        return self.balance - self.held

    def as_json(self) -> dict[str, Any]:
        return {
            "wallet_id": str(self.wallet_id),
            "at": rfc3339(self.at),
            "balance": format_amount(self.balance, self.currency),
            "held": format_amount(self.held, self.currency),
            "available": format_amount(self.available, self.currency),
            "currency": self.currency,
        }


@dataclass(frozen=True)
class Statement:
    """Entries created in `[start, end)`, one page of them, and what the whole range sums to.

    `opening + credits - debits == closing` holds for the range, whatever the page.
    """

    wallet_id: UUID
    currency: str
    start: datetime
    end: datetime
    opening: int
    closing: int
    debits: int
    credits: int
    entries: Sequence[dict[str, Any]]
    next_key: Keyset | None = None
    """Where the next page starts, when the range holds more entries than this page."""

    def as_json(self) -> dict[str, Any]:
        money = self.currency
        return {
            "wallet_id": str(self.wallet_id),
            "currency": money,
            "from": rfc3339(self.start),
            "to": rfc3339(self.end),
            "opening_balance": format_amount(self.opening, money),
            "closing_balance": format_amount(self.closing, money),
            "total_debits": format_amount(self.debits, money),
            "total_credits": format_amount(self.credits, money),
            "data": [entry_view(e) for e in self.entries],
        }
