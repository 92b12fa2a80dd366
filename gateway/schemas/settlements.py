"""Models of the settlement routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from gateway.pagination import PageQuery
from gateway.schemas.common import Currency


class ListSettlements(PageQuery):
    currency: Currency | None = None
    payer_organization_id: UUID | None = None
    payee_organization_id: UUID | None = None


class SettlementOut(BaseModel):
    id: UUID
    payer_organization_id: UUID = Field(description="The organization that owed the net amount")
    payee_organization_id: UUID
    currency: str
    gross_payer_to_payee: str = Field(examples=["60.00"])
    gross_payee_to_payer: str = Field(examples=["15.00"])
    net_amount: str = Field(examples=["45.00"], description="Gross one way minus the other, >= 0")
    transfer_count: int
    window_start: datetime | None = Field(description="Posting time of the earliest transfer")
    window_end: datetime | None = Field(description="Posting time of the latest transfer")
    status: Literal["COMPLETED"]
    created_at: datetime


class SettlementRunOut(BaseModel):
    status: Literal["COMPLETED"]
    settlements: list[SettlementOut] = Field(
        description="Settlements this run wrote for the caller's organization (may be empty)"
    )
