"""Request and response models of a wallet's history: balance at an instant, statements."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field

from gateway.schemas.transactions import EntryOut, StatementQuery
from gateway.validation import QueryModel


class BalanceAtQuery(QueryModel):
    at: AwareDatetime | None = Field(
        None, description="The instant (RFC 3339, with an offset); now when not given"
    )


class BalanceAtOut(BaseModel):
    wallet_id: UUID
    at: datetime
    balance: str = Field(description="Posted balance as of `at`, entries at `at` included")
    held: str = Field(description="Reserved by the holds open at `at`, in major units")
    available: str = Field(
        description="`balance` - `held` as of `at` (no overdraft limit added: limits keep"
        " no history)"
    )
    currency: str


class WalletStatementQuery(StatementQuery):
    from_: AwareDatetime | None = Field(
        None, alias="from", description="Entries at or after (RFC 3339); the wallet's opening"
    )
    to: AwareDatetime | None = Field(None, description="Entries before (RFC 3339); now")
    format: Literal["json", "csv"] | None = Field(
        None, description="`csv` (or `Accept: text/csv`): every entry of the range as CSV"
    )


class StatementOut(BaseModel):
    wallet_id: UUID
    currency: str
    from_: datetime = Field(alias="from")
    to: datetime
    opening_balance: str
    closing_balance: str
    total_debits: str
    total_credits: str
    data: list[EntryOut]
    next_cursor: str | None
