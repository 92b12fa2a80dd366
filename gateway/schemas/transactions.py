"""Request and response models of the Transfers area."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, field_validator

from gateway.pagination import PageQuery
from gateway.schemas.common import Amount, Currency
from gateway.validation import BodyModel, QueryModel

IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$"),
    Field(description="1-255 printable ASCII characters, unique per organization"),
]
Description = Annotated[str, StringConstraints(max_length=500)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]


class _TransferFields(BodyModel):
    source_wallet_id: UUID
    destination_wallet_id: UUID
    amount: Amount
    currency: Currency
    description: Description | None = None
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, description="At most 50 string keys with string values"
    )

    @field_validator("metadata")
    @classmethod
    def _at_most_50(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 50:
            raise ValueError("metadata holds at most 50 keys")
        return value


class CreateTransfer(_TransferFields):
    """`POST /transactions/transfer`; the idempotency key travels in the header."""


class BatchTransfer(_TransferFields):
    idempotency_key: IdempotencyKey


class CreateBatch(BodyModel):
    transfers: list[BatchTransfer] = Field(min_length=1, max_length=1000)
    atomic: bool = False


class ReverseTransfer(BodyModel):
    amount: Amount | None = Field(None, description="Defaults to what remains reversible")


class TransactionOut(BaseModel):
    id: UUID
    organization_id: UUID
    destination_organization_id: UUID
    idempotency_key: str | None
    kind: Literal["TRANSFER", "CROSS_ORG"]
    source_wallet_id: UUID | None = Field(
        description="Hidden from the payee of a cross-org transfer"
    )
    destination_wallet_id: UUID
    amount: str
    currency: str
    status: Literal["PENDING", "COMPLETED", "FAILED", "CANCELLED"]
    failure_code: str | None
    failure_message: str | None
    description: str | None
    metadata: dict[str, str]
    reverses_transaction_id: UUID | None
    atomic_group_id: UUID | None
    created_at: datetime
    posted_at: datetime | None
    cancelled_at: datetime | None
    failed_at: datetime | None


class BatchOut(BaseModel):
    data: list[TransactionOut]


class ListTransactions(PageQuery):
    status: Literal["PENDING", "COMPLETED", "FAILED", "CANCELLED"] | None = None
    wallet_id: UUID | None = None
    kind: Literal["TRANSFER", "CROSS_ORG"] | None = None
    idempotency_key: IdempotencyKey | None = Field(
        None, description="The key your organization submitted the transfer with"
    )
    from_: AwareDatetime | None = Field(
        None, alias="from", description="Created at or after (RFC 3339 with offset)"
    )
    to: AwareDatetime | None = Field(None, description="Created before (RFC 3339 with offset)")


class WaitQuery(QueryModel):
    wait: int = Field(
        0, ge=0, le=30, description="Seconds to hold the request until the transfer is final"
    )


class EntryOut(BaseModel):
    id: int
    transaction_id: UUID | None
    settlement_id: UUID | None = None
    wallet_id: UUID
    direction: Literal["DEBIT", "CREDIT"]
    amount: str
    currency: str
    balance_after: str
    created_at: datetime


class EntriesOut(BaseModel):
    data: list[EntryOut]


class StatementQuery(PageQuery):
    from_: AwareDatetime | None = Field(
        None, alias="from", description="Entries at or after (RFC 3339 with offset)"
    )
    to: AwareDatetime | None = Field(None, description="Entries before (RFC 3339 with offset)")
