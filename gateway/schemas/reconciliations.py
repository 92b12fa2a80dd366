"""Models of the reconciliation routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from gateway.pagination import PageQuery
from gateway.validation import BodyModel

RunStatusName = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED"]
ModeName = Literal["INCREMENTAL", "FULL"]
KindName = Literal[
    "balance_mismatch",
    "balance_chain_broken",
    "unbalanced_transaction",
    "unbalanced_settlement",
    "posted_without_entries",
    "unposted_with_entries",
    "organization_sum_nonzero",
    "overdraft",
    "held_mismatch",
    "stuck_pending",
]


class RequestReconciliation(BodyModel):
    mode: ModeName = Field(
        "FULL",
        description="FULL reads every entry; INCREMENTAL only entries past each wallet's "
        "last clean check",
    )


class ListReconciliations(PageQuery):
    pass


class ReconciliationOut(BaseModel):
    id: UUID
    status: RunStatusName
    mode: ModeName
    requested_by: UUID | None = Field(
        description="The user of your organization who asked for the run; null for "
        "scheduled runs and runs asked for by anyone else"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    wallets_checked: int = Field(description="Wallets checked over the whole ledger")
    entries_checked: int = Field(description="Ledger entries read over the whole ledger")
    discrepancy_count: int = Field(description="Discrepancies in your organization's books")


class DiscrepancyOut(BaseModel):
    kind: KindName
    wallet_id: UUID | None
    transaction_id: UUID | None
    settlement_id: UUID | None
    entry_id: int | None
    currency: str | None
    expected: str | None = Field(
        examples=["1250.00"],
        description="What the ledger's own records say it should be (see `unit`)",
    )
    actual: str | None = Field(examples=["1257.00"], description="What was found")
    unit: Literal["money", "count"] = Field(
        description="`money`: decimal strings in major units of `currency`; "
        "`count`: a number of transfers or entries"
    )


class ReconciliationReportOut(ReconciliationOut):
    discrepancies: list[DiscrepancyOut] = Field(
        description="Your organization's discrepancies, oldest first, at most 1000"
    )
