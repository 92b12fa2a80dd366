"""The JSON the API answers with, as TypedDicts (field names exactly as in the contract).

Money stays a decimal string in major units (`"1250.00"`), exactly as sent: turn it into
`decimal.Decimal` for arithmetic, never into a float. Ids are UUID strings, timestamps
RFC 3339 strings in UTC.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypedDict, TypeVar

T = TypeVar("T")

Role = Literal["ADMIN", "MEMBER"]
WalletType = Literal["PRIMARY", "BONUS", "SYSTEM", "CLEARING"]
WalletStatus = Literal["ACTIVE", "LOCKED", "CLOSED"]
TransferStatus = Literal["PENDING", "HELD", "COMPLETED", "FAILED", "CANCELLED", "VOIDED", "EXPIRED"]
FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "VOIDED", "EXPIRED"})


class Page(TypedDict, Generic[T]):
    data: list[T]
    next_cursor: str | None


class Organization(TypedDict):
    id: str
    name: str
    default_currency: str
    created_at: str


class User(TypedDict):
    id: str
    organization_id: str
    email: str
    full_name: str
    role: Role
    is_active: bool
    created_at: str


class Token(TypedDict):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int


class SignupResult(Token):
    user: User
    organization: Organization


class OrganizationRef(TypedDict):
    id: str
    name: str


class Me(TypedDict):
    id: str
    email: str
    full_name: str
    role: Role
    organization: OrganizationRef


class Wallet(TypedDict):
    id: str
    organization_id: str
    user_id: str | None
    type: WalletType
    currency: str
    status: WalletStatus
    balance: str
    available_balance: str
    held: str
    overdraft_limit: str
    name: str | None
    metadata: dict[str, str]
    created_at: str
    updated_at: str


class TransferTotals(TypedDict):
    count: int
    volume: str


class CurrencySummary(TypedDict):
    currency: str
    balance_by_type: dict[str, str]
    wallets_by_status: dict[str, int]
    transfers_by_status: dict[str, TransferTotals]


class WalletSummary(TypedDict):
    data: list[CurrencySummary]


class HoldActionView(TypedDict):
    """A capture or void asked of a hold; `status` PENDING until a worker decides it."""

    id: str
    transaction_id: str
    action: Literal["capture", "void"]
    amount: str | None
    status: Literal["PENDING", "COMPLETED", "FAILED"]
    failure_code: str | None
    failure_message: str | None
    created_at: str
    decided_at: str | None


class Transaction(TypedDict):
    id: str
    organization_id: str
    destination_organization_id: str
    idempotency_key: str | None
    kind: Literal["TRANSFER", "CROSS_ORG", "MULTI"]
    source_wallet_id: str | None
    destination_wallet_id: str
    amount: str
    currency: str
    status: TransferStatus
    failure_code: str | None
    failure_message: str | None
    description: str | None
    metadata: dict[str, str]
    reference: str | None
    reverses_transaction_id: str | None
    atomic_group_id: str | None
    created_at: str
    posted_at: str | None
    cancelled_at: str | None
    failed_at: str | None
    hold_amount: str | None
    hold_expires_at: str | None
    postings: list[Posting] | None


class Posting(TypedDict):
    source_wallet_id: str | None
    """None for the payee of a leg into its organization."""
    destination_wallet_id: str
    amount: str
    currency: str


class Entry(TypedDict):
    id: int
    transaction_id: str | None
    settlement_id: str | None
    wallet_id: str
    direction: Literal["DEBIT", "CREDIT"]
    amount: str
    currency: str
    balance_after: str
    created_at: str


class Counterparty(TypedDict):
    organization_id: str
    created_by: str | None
    created_at: str


class Settlement(TypedDict):
    id: str
    payer_organization_id: str
    payee_organization_id: str
    currency: str
    gross_payer_to_payee: str
    gross_payee_to_payer: str
    net_amount: str
    transfer_count: int
    window_start: str | None
    window_end: str | None
    status: Literal["COMPLETED"]
    created_at: str


class SettlementRun(TypedDict):
    status: Literal["COMPLETED"]
    settlements: list[Settlement]


class Webhook(TypedDict):
    id: str
    organization_id: str
    url: str
    events: list[str]
    is_active: bool
    created_at: str


class CreatedWebhook(Webhook):
    secret: str


class DeliveryAttempt(TypedDict):
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    created_at: str


class Delivery(TypedDict):
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    origin: Literal["RELAY", "REDELIVERY"]
    status: str
    attempt_count: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    attempts: list[DeliveryAttempt]
    created_at: str
    updated_at: str


class Redelivery(TypedDict):
    event_id: str
    deliveries: list[Delivery]


class Reconciliation(TypedDict):
    id: str
    status: str
    mode: Literal["FULL", "INCREMENTAL"]
    requested_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    wallets_checked: int
    entries_checked: int
    discrepancy_count: int


class Discrepancy(TypedDict):
    kind: str
    wallet_id: str | None
    transaction_id: str | None
    settlement_id: str | None
    entry_id: int | None
    currency: str | None
    expected: str | None
    actual: str | None
    unit: Literal["money", "count"]


class ReconciliationReport(Reconciliation):
    discrepancies: list[Discrepancy]


class AuditLog(TypedDict):
    id: int
    organization_id: str | None
    actor_id: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    client_address: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    created_at: str
    chain_seq: int | None
    prev_hash: str | None
    hash: str | None


class AuditVerification(TypedDict):
    verified: bool
    records_checked: int
    unsealed_records: int
    first_broken: dict[str, Any] | None


class RiskRule(TypedDict):
    id: str
    organization_id: str
    kind: str
    wallet_type: str | None
    currency: str | None
    wallet_id: str | None
    max_amount: str | None
    max_count: int | None
    window_seconds: int | None
    is_active: bool
    created_by: str | None
    created_at: str
    updated_at: str


class TransferRequest(TypedDict, total=False):
    """One transfer of a batch; `idempotency_key` is filled in when left out."""

    idempotency_key: str
    source_wallet_id: str
    destination_wallet_id: str
    amount: str
    currency: str
    description: str
    metadata: dict[str, str]
    reference: str
