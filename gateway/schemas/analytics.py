"""Models of the analytics routes: a bounded time range in, aggregates out (money as strings)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, field_validator

from gateway.validation import QueryModel

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class RangeQuery(QueryModel):
    from_: AwareDatetime | None = Field(
        None, alias="from", description="Start (RFC 3339); default `to` minus 24 hours"
    )
    to: AwareDatetime | None = Field(None, description="End (RFC 3339); default now")
    bucket: Literal["minute", "hour", "day"] | None = Field(
        None, description="Bucket size; default the finest giving at most 375 points"
    )

    @field_validator("from_", "to")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        if value is not None and not EARLIEST <= value <= LATEST:
            raise ValueError("must be between the years 2000 and 2200")
        return value


class TopWalletsQuery(QueryModel):
    day: date | None = Field(None, description="A UTC day (YYYY-MM-DD); default today")
    limit: int = Field(10, ge=1, le=50, description="Wallets per currency")

    @field_validator("day")
    @classmethod
    def _plausible(cls, value: date | None) -> date | None:
        if value is not None and not EARLIEST.date() <= value <= LATEST.date():
            raise ValueError("must be between the years 2000 and 2200")
        return value


class StatusCounts(BaseModel):
    COMPLETED: int
    FAILED: int
    CANCELLED: int
    VOIDED: int = 0
    EXPIRED: int = 0


class VolumePoint(BaseModel):
    t: datetime = Field(description="Start of the bucket")
    count: int = Field(description="Transfers that reached a final state in the bucket")
    by_status: StatusCounts
    volume: str = Field(description="Amount of the completed ones", examples=["1250.00"])


class CurrencySeries(BaseModel):
    currency: str
    points: list[VolumePoint]


class RangeOut(BaseModel):
    model_config = {"populate_by_name": True}
    from_: datetime = Field(alias="from")
    to: datetime
    bucket: Literal["minute", "hour", "day"]


class VolumeOut(RangeOut):
    data: list[CurrencySeries]


class Totals(BaseModel):
    count: int
    volume: str


class FailureTotals(Totals):
    code: str


class CurrencyStatuses(BaseModel):
    currency: str
    by_status: dict[str, Totals]
    failures: list[FailureTotals]


class StatusesOut(RangeOut):
    data: list[CurrencyStatuses]


class WalletVolume(BaseModel):
    wallet_id: UUID
    type: str
    name: str | None
    debit_count: int
    debit_volume: str
    credit_count: int
    credit_volume: str
    volume: str


class CurrencyTopWallets(BaseModel):
    currency: str
    wallets: list[WalletVolume]


class TopWalletsOut(BaseModel):
    day: date = Field(description="The UTC day whose completed transfers are counted")
    data: list[CurrencyTopWallets]


class TypeBalance(BaseModel):
    wallets: int
    balance: str


class CurrencyBalances(BaseModel):
    currency: str
    by_type: dict[str, TypeBalance]


class BalancesOut(BaseModel):
    data: list[CurrencyBalances]


class CurrencyBacklog(BaseModel):
    currency: str
    count: int
    amount: str
    oldest_created_at: datetime
    oldest_age_s: float


class BacklogOut(BaseModel):
    data: list[CurrencyBacklog]


class RunSummaryOut(BaseModel):
    id: UUID
    scope: Literal["organization", "ledger"]
    mode: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    wallets_checked: int | None
    entries_checked: int | None
    discrepancy_count: int = Field(
        description="Discrepancies found in this organization's books (the list is in"
        " `GET /reconciliations/{id}`)"
    )
    error: str | None
    created_at: datetime


class LatestReconciliationOut(BaseModel):
    run: RunSummaryOut | None


class PositionOut(BaseModel):
    wallet_id: UUID
    counterparty_organization_id: UUID
    counterparty_name: str
    currency: str
    balance: str = Field(description="Negative: owed to the counterparty; positive: owed by it")


class RecentSettlementOut(BaseModel):
    id: UUID
    payer_organization_id: UUID
    payee_organization_id: UUID
    currency: str
    net_amount: str
    transfer_count: int
    status: str
    created_at: datetime


class SettlementsOut(BaseModel):
    positions: list[PositionOut]
    recent: list[RecentSettlementOut]
