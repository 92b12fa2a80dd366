"""Models of the wallet routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from gateway.pagination import PageQuery
from gateway.schemas.common import Currency, Metadata, Name
from gateway.validation import BodyModel

WalletTypeName = Literal["PRIMARY", "BONUS", "SYSTEM", "CLEARING"]
WalletStatusName = Literal["ACTIVE", "LOCKED", "CLOSED"]
TransferStatusName = Literal[
    "PENDING", "HELD", "COMPLETED", "FAILED", "CANCELLED", "VOIDED", "EXPIRED"
]


class CreateWallet(BodyModel):
    type: Literal["PRIMARY", "BONUS", "SYSTEM"] = Field(
        description="CLEARING wallets are created by the ledger, not through the API"
    )
    currency: Currency | None = Field(None, description="Defaults to the organization's")
    user_id: UUID | None = Field(None, description="Owner (admin only); defaults to the caller")
    name: Name | None = None
    metadata: Metadata = Field(
        default_factory=dict, description="At most 50 string keys with string values"
    )


class UpdateWallet(BodyModel):
    status: WalletStatusName | None = None
    metadata: Metadata | None = Field(None, description="Replaces the wallet's metadata")
    overdraft_limit: str | None = Field(
        None,
        max_length=40,
        examples=["100.00"],
        description="How far below zero the wallet may go, a decimal string (0 removes it)",
    )

    @model_validator(mode="after")
    def _changes_something(self) -> UpdateWallet:
        if self.status is None and self.metadata is None and self.overdraft_limit is None:
            raise ValueError("send status, overdraft_limit, metadata or several of them")
        return self


class ListWallets(PageQuery):
    type: WalletTypeName | None = None
    status: WalletStatusName | None = None
    currency: Currency | None = None
    user_id: UUID | None = None
    metadata: Metadata = Field(
        default_factory=dict,
        description="`?metadata[key]=value`, repeatable: wallets holding every pair",
    )


class WalletOut(BaseModel):
    id: UUID
    organization_id: UUID
    user_id: UUID | None
    type: WalletTypeName
    currency: str
    status: WalletStatusName
    balance: str = Field(examples=["1250.00"])
    available_balance: str = Field(
        examples=["1200.00"],
        description=(
            "What may still be spent: balance minus PENDING outgoing transfers and open holds,"
            " plus the overdraft limit"
        ),
    )
    held: str = Field(examples=["50.00"], description="Reserved by open holds")
    overdraft_limit: str = Field(examples=["0.00"], description="How far below zero it may go")
    name: str | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


class TransferTotals(BaseModel):
    count: int
    volume: str


class CurrencySummaryOut(BaseModel):
    currency: str
    balance_by_type: dict[WalletTypeName, str]
    wallets_by_status: dict[WalletStatusName, int]
    transfers_by_status: dict[TransferStatusName, TransferTotals]


class WalletSummaryOut(BaseModel):
    data: list[CurrencySummaryOut]
