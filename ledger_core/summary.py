"""An organization's books at a glance, per currency: what the admin summary shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger_core.money import format_amount
from ledger_core.wallets import WalletStatus, WalletType

TRANSFER_STATUSES = ("PENDING", "HELD", "COMPLETED", "FAILED", "CANCELLED", "VOIDED", "EXPIRED")


@dataclass
class CurrencySummary:
    """Totals for one currency; every type and status is present, zero when unused."""

    currency: str
    balance_by_type: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WalletType, 0))
    wallets_by_status: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(WalletStatus, 0)
    )
    transfer_count_by_status: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(TRANSFER_STATUSES, 0)
    )
    transfer_volume_by_status: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(TRANSFER_STATUSES, 0)
    )

    def as_json(self) -> dict[str, Any]:
        def money(value: int) -> str:
            return format_amount(value, self.currency)

        return {
            "currency": self.currency,
            "balance_by_type": {str(k): money(v) for k, v in self.balance_by_type.items()},
            "wallets_by_status": {str(k): v for k, v in self.wallets_by_status.items()},
            "transfers_by_status": {
                status: {
                    "count": self.transfer_count_by_status[status],
                    "volume": money(self.transfer_volume_by_status[status]),
                }
                for status in TRANSFER_STATUSES
            },
        }
