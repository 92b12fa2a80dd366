"""Request and response models of the Transfers area."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from gateway.pagination import PageQuery
from gateway.schemas.common import Amount, Currency, Metadata
from gateway.validation import BodyModel, QueryModel

IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$"),
    Field(description="1-255 printable ASCII characters, unique per organization"),
]
TransferStatus = Literal["PENDING", "HELD", "COMPLETED", "FAILED", "CANCELLED", "VOIDED", "EXPIRED"]
Description = Annotated[str, StringConstraints(max_length=500)]
Reference = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[\x20-\x7e]+$"),
    Field(description="1-128 printable ASCII characters, unique per organization"),
]


class _Annotations(BodyModel):
    description: Description | None = None
    metadata: Metadata = Field(
        default_factory=dict, description="At most 50 string keys with string values"
    )
    reference: Reference | None = None


class _TransferFields(_Annotations):
    source_wallet_id: UUID
    destination_wallet_id: UUID
    amount: Amount
    currency: Currency


class PostingIn(BodyModel):
    source_wallet_id: UUID
    destination_wallet_id: UUID
    amount: Amount
    currency: Currency


class CreateMulti(_Annotations):
    """`POST /transactions`: legs that post all together or not at all."""

    postings: list[PostingIn] = Field(min_length=1, max_length=100)


class PostingOut(BaseModel):
    source_wallet_id: UUID | None = Field(
        description="Hidden from the payee of a cross-organization leg"
    )
    destination_wallet_id: UUID
    amount: str
    currency: str


class CreateTransfer(_TransferFields):
    """`POST /transactions/transfer`; the idempotency key travels in the header."""

    hold: bool = Field(
        False, description="Reserve the amount on the source (HELD) until captured or voided"
    )
    hold_expires_in_s: int | None = Field(
        None,
        ge=1,
        le=30 * 86_400,
        description="With `hold`: seconds until the hold expires (default from the server)",
    )


class CaptureHold(BodyModel):
    amount: Amount | None = Field(None, description="At most the amount held; defaults to all")


class VoidHold(BodyModel):
    """`POST /transactions/{id}/void` takes an empty object."""


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
    kind: Literal["TRANSFER", "CROSS_ORG", "MULTI"]
    source_wallet_id: UUID | None = Field(
        description="Hidden from the payee of a cross-org transfer"
    )
    destination_wallet_id: UUID
    amount: str
    currency: str
    status: TransferStatus
    failure_code: str | None
    failure_message: str | None
    description: str | None
    metadata: dict[str, str]
    reference: str | None = Field(description="Hidden from the payee of a cross-org transfer")
    reverses_transaction_id: UUID | None
    atomic_group_id: UUID | None
    created_at: datetime
    posted_at: datetime | None
    cancelled_at: datetime | None
    failed_at: datetime | None
    hold_amount: str | None = Field(description="The amount reserved, for a hold")
    hold_expires_at: datetime | None = Field(description="When an open hold expires")
    postings: list[PostingOut] | None = Field(
        description="The legs of a MULTI transaction (its wallets, amount and currency are"
        " those of the first leg). The payee of cross-organization legs sees only the legs into"
        " its organization, without their source wallets"
    )


class HoldActionOut(BaseModel):
    """A capture or void asked of a hold: PENDING until a posting worker decides it."""

    id: UUID
    transaction_id: UUID = Field(description="The hold this capture or void ends")
    action: Literal["capture", "void"]
    amount: str | None = Field(
        description="The amount the capture asked for; null: all of the hold (or a void)"
    )
    status: Literal["PENDING", "COMPLETED", "FAILED"] = Field(
        description="`COMPLETED`: this request ended the hold (the transfer is now `COMPLETED`"
        " or `VOIDED`); `FAILED`: it did not, and `failure_code` says why (`not_held`: a void,"
        " another capture or the expiry ended the hold first)"
    )
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    decided_at: datetime | None = Field(description="When a posting worker decided it")


class BatchOut(BaseModel):
    data: list[TransactionOut]


class ListTransactions(PageQuery):
    status: TransferStatus | None = None
    wallet_id: UUID | None = None
    kind: Literal["TRANSFER", "CROSS_ORG", "MULTI"] | None = None
    idempotency_key: IdempotencyKey | None = Field(
        None, description="The key your organization submitted the transfer with"
    )
    from_: AwareDatetime | None = Field(
        None, alias="from", description="Created at or after (RFC 3339 with offset)"
    )
    to: AwareDatetime | None = Field(None, description="Created before (RFC 3339 with offset)")
    reference: Reference | None = Field(
        None, description="The client's own reference the transfer was submitted with"
    )
    metadata: Metadata = Field(
        default_factory=dict,
        description="`?metadata[key]=value`, repeatable: transfers holding every pair",
    )
    format: Literal["json", "csv"] | None = Field(
        None, description="`csv` (or `Accept: text/csv`): every matching transfer as CSV"
    )


class WaitQuery(QueryModel):
    wait: int = Field(
        0, ge=0, le=30, description="Seconds to hold the request until the transfer is final"
    )


class SubmitWaitQuery(QueryModel):
    wait: int = Field(
        0,
        ge=0,
        le=30,
        description=(
            "Seconds to hold the answer until the transfer is decided (COMPLETED, FAILED,"
            " CANCELLED or HELD): the status stays `202` (`200` for a replay), the body is the"
            " transfer as it is then, PENDING if the time ran out. 0 (the default) answers"
            " as soon as it is stored."
        ),
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
