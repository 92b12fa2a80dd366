"""Models of the risk rule routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from gateway.pagination import PageQuery
from gateway.schemas.common import Amount, Currency
from gateway.validation import BodyModel
from ledger_core.risk import MAX_WINDOW_SECONDS

RuleKindName = Literal["MAX_AMOUNT", "WINDOW_DEBITS", "BLOCKED_WALLET"]
RuleWalletType = Literal["PRIMARY", "BONUS", "SYSTEM"]
WINDOW_FIELD = Field(
    None, ge=1, le=MAX_WINDOW_SECONDS, description="Length of the rolling window, in seconds"
)
COUNT_FIELD = Field(None, ge=1, le=1_000_000_000, description="Most debits in the window")
AMOUNT_FIELD = Field(
    None, description="Decimal string in the rule's currency: the limit per transfer or per window"
)


class CreateRiskRule(BodyModel):
    """A limit on the debits of the organization's wallets (or a block on one wallet).

    Scope (all optional, combined): `wallet_type`, `currency`, `wallet_id`. MAX_AMOUNT
    takes `max_amount` (and a currency, or a `wallet_id` to take it from); WINDOW_DEBITS
    takes `window_seconds` and `max_amount` and/or `max_count`; BLOCKED_WALLET takes only
    `wallet_id`.
    """

    kind: RuleKindName
    wallet_type: RuleWalletType | None = None
    currency: Currency | None = None
    wallet_id: UUID | None = None
    max_amount: Amount | None = AMOUNT_FIELD
    max_count: int | None = COUNT_FIELD
    window_seconds: int | None = WINDOW_FIELD


class UpdateRiskRule(BodyModel):
    """New limits and/or `is_active`; give only what changes. `null` clears a window
    rule's `max_amount` or `max_count` (one of them must remain)."""

    max_amount: Amount | None = AMOUNT_FIELD
    max_count: int | None = COUNT_FIELD
    window_seconds: int | None = WINDOW_FIELD
    is_active: bool | None = None


class ListRiskRules(PageQuery):
    kind: RuleKindName | None = None
    is_active: bool | None = None


class RiskRuleOut(BaseModel):
    id: UUID
    organization_id: UUID
    kind: RuleKindName
    wallet_type: RuleWalletType | None
    currency: str | None
    wallet_id: UUID | None
    max_amount: str | None = Field(examples=["5000.00"])
    max_count: int | None
    window_seconds: int | None
    is_active: bool
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
