"""The schema, as SQLAlchemy Core tables. Alembic migrations must match it (`alembic check`).

Money columns are BIGINT counts of minor units. Triggers installed by the migrations
refuse UPDATE and DELETE on ledger entries and audit records, and refuse any change to a
transaction once it has left PENDING.

The references every transfer writes are checked once a statement instead of once a row
(migration 0029), so they are not declared here as foreign keys: a transaction's wallets
(each with its organization), author and reversed transaction; a ledger entry's wallet
(with its organization) and transaction; an event's and an audit record's organization.
Each of those tables refuses, at the end of every INSERT, a row whose referenced key does
not exist (SQLSTATE 23503, named as the foreign key it replaces); deleting a wallet,
organization or user still named is refused, and referenced keys never change.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.types import UserDefinedType

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class TransactionId(UserDefinedType[str]):
    """PostgreSQL's `xid8`: a transaction's 64-bit id, which never wraps around. The driver
    reads it as its decimal text."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


def _uuid_pk() -> Column[object]:
    return Column(
        "id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


def _created_at() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _written_at() -> Column[object]:
    """When the writing statement reached the server: after its writer locked the wallets,
    so a wallet's rows are in the same order by `(created_at, id)` as by `id`."""
    return Column(
        "created_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.statement_timestamp(),
    )


TAGGED = "metadata <> '{}'::jsonb"
"""The predicate of the metadata indexes: rows without metadata (most) get no entry. A
lookup by metadata pairs states it too, as this literal, so the planner can use them; any
non-empty `@>` pattern implies it."""


organizations = Table(
    "organizations",
    metadata,
    _uuid_pk(),
    Column("name", String(200), nullable=False),
    Column("default_currency", String(3), nullable=False),
    _created_at(),
)

users = Table(
    "users",
    metadata,
    _uuid_pk(),
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("password_hash", LargeBinary, nullable=False),
    Column("full_name", String(200), nullable=False),
    Column("role", String(10), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _created_at(),
    Column("token_version", Integer, nullable=False, server_default=text("0")),
    CheckConstraint("role IN ('ADMIN', 'MEMBER')", name="role"),
    Index("uq_users_email_lower", func.lower(text("email")), unique=True),
    Index("ix_users_organization_id_created_at", "organization_id", "created_at"),
)

wallets = Table(
    "wallets",
    metadata,
    _uuid_pk(),
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.id"), nullable=True),
    Column("type", String(10), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(10), nullable=False, server_default=text("'ACTIVE'")),
    Column("balance", BigInteger, nullable=False, server_default=text("0")),
    Column("held", BigInteger, nullable=False, server_default=text("0")),
    Column("overdraft_limit", BigInteger, nullable=False, server_default=text("0")),
    Column("name", String(200), nullable=True),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column(
        "counterparty_organization_id",
        UUID(as_uuid=True),
        ForeignKey("organizations.id"),
        nullable=True,
    ),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("counts_day", Date, nullable=True),
    Column("day_debit_count", BigInteger, nullable=False, server_default=text("0")),
    Column("day_credit_count", BigInteger, nullable=False, server_default=text("0")),
    Column("day_debit_volume", Numeric(39, 0), nullable=False, server_default=text("0")),
    Column("day_credit_volume", Numeric(39, 0), nullable=False, server_default=text("0")),
    CheckConstraint("type IN ('PRIMARY', 'BONUS', 'SYSTEM', 'CLEARING')", name="type"),
    CheckConstraint("status IN ('ACTIVE', 'LOCKED', 'CLOSED')", name="status"),
    CheckConstraint(
        "type IN ('SYSTEM', 'CLEARING') OR balance - held >= -overdraft_limit", name="no_overdraft"
    ),
    CheckConstraint("held >= 0", name="held_not_negative"),
    CheckConstraint("overdraft_limit >= 0", name="overdraft_not_negative"),
    CheckConstraint(
        "(type = 'CLEARING') = (counterparty_organization_id IS NOT NULL)", name="clearing_peer"
    ),
    Index(
        "uq_wallets_system_per_currency",
        "organization_id",
        "currency",
        unique=True,
        postgresql_where=text("type = 'SYSTEM'"),
    ),
    Index(
        "uq_wallets_clearing_per_peer",
        "organization_id",
        "counterparty_organization_id",
        "currency",
        unique=True,
        postgresql_where=text("type = 'CLEARING'"),
    ),
    Index("ix_wallets_organization_id_created_at", "organization_id", "created_at"),
    Index("ix_wallets_user_id", "user_id"),
    Index(
        "ix_wallets_metadata",
        "metadata",
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
        postgresql_where=text(TAGGED),
    ),
    CheckConstraint(
        "day_debit_count >= 0 AND day_credit_count >= 0"
        " AND day_debit_volume >= 0 AND day_credit_volume >= 0",
        name="day_counts",
    ),
    UniqueConstraint("id", "organization_id"),
)
"""`(id, organization_id)` is unique so that rows naming a wallet with an organization
refer to the pair: the database checks the wallet belongs to that organization (a foreign
key, or the statement checks of migration 0029).
`counts_day` and the `day_` columns count the completed transfers a posting batch moved
through the wallet on that UTC day (see `wallet_rollups`)."""

counterparties = Table(
    "counterparties",
    metadata,
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), primary_key=True),
    Column(
        "counterparty_organization_id",
        UUID(as_uuid=True),
        ForeignKey("organizations.id"),
        primary_key=True,
    ),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id"), nullable=True),
    _created_at(),
    CheckConstraint("organization_id <> counterparty_organization_id", name="not_self"),
)

transactions = Table(
    "transactions",
    metadata,
    _uuid_pk(),
    Column("seq", BigInteger, Identity(always=False), nullable=False),
    Column("organization_id", UUID(as_uuid=True), nullable=False),
    Column("destination_organization_id", UUID(as_uuid=True), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("source_wallet_id", UUID(as_uuid=True), nullable=False),
    Column("destination_wallet_id", UUID(as_uuid=True), nullable=False),
    Column("source_clearing_wallet_id", UUID(as_uuid=True), nullable=True),
    Column("destination_clearing_wallet_id", UUID(as_uuid=True), nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(10), nullable=False, server_default=text("'PENDING'")),
    Column("failure_code", String(50), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("description", String(500), nullable=True),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("reference", String(128), nullable=True),
    Column("reverses_transaction_id", UUID(as_uuid=True), nullable=True),
    Column("atomic_group_id", UUID(as_uuid=True), nullable=True),
    Column("atomic_group_size", Integer, nullable=True),
    Column("created_by", UUID(as_uuid=True), nullable=True),
    _created_at(),
    Column("posted_at", DateTime(timezone=True), nullable=True),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    Column("failed_at", DateTime(timezone=True), nullable=True),
    Column("hold_amount", BigInteger, nullable=True),
    Column("hold_expires_at", DateTime(timezone=True), nullable=True),
    Column("hold_key", String(255), nullable=True),
    Column("hold_request_hash", String(64), nullable=True),
    Column("postings", JSONB, nullable=True),
    UniqueConstraint("organization_id", "idempotency_key"),
    CheckConstraint("amount > 0", name="positive_amount"),
    CheckConstraint("kind IN ('TRANSFER', 'CROSS_ORG', 'MULTI')", name="kind"),
    CheckConstraint("(kind = 'MULTI') = (postings IS NOT NULL)", name="multi_postings"),
    CheckConstraint(
        "status IN ('PENDING', 'HELD', 'COMPLETED', 'FAILED', 'CANCELLED', 'VOIDED', 'EXPIRED')",
        name="status",
    ),
    CheckConstraint(
        "(hold_amount IS NULL) = (hold_expires_at IS NULL)"
        " AND (hold_amount IS NULL OR amount <= hold_amount)"
        " AND (status NOT IN ('HELD', 'VOIDED', 'EXPIRED') OR hold_amount IS NOT NULL)",
        name="hold_shape",
    ),
    Index(
        "ix_transactions_held_expires_at",
        "hold_expires_at",
        postgresql_where=text("status = 'HELD'"),
    ),
    CheckConstraint("source_wallet_id <> destination_wallet_id", name="distinct_wallets"),
    CheckConstraint(
        "(kind = 'CROSS_ORG') = (source_clearing_wallet_id IS NOT NULL"
        " AND destination_clearing_wallet_id IS NOT NULL)",
        name="cross_org_clearing",
    ),
    Index(
        "ix_transactions_pending_seq",
        "seq",
        postgresql_where=text("status = 'PENDING' AND seq IS NOT NULL"),
    ),
    Index(
        "ix_transactions_pending_org_seq",
        "organization_id",
        "seq",
        postgresql_where=text("status = 'PENDING'"),
    ),
    Index(
        "ix_transactions_pending_source_wallet_id",
        "source_wallet_id",
        postgresql_where=text("status = 'PENDING' AND source_wallet_id IS NOT NULL"),
    ),
    Index("ix_transactions_organization_id_created_at", "organization_id", "created_at", "id"),
    Index(
        "ix_transactions_destination_organization_id_created_at",
        "destination_organization_id",
        "created_at",
        "id",
        postgresql_where=text("kind = 'CROSS_ORG'"),
    ),
    Index("ix_transactions_source_wallet_id_created_at", "source_wallet_id", "created_at"),
    Index(
        "ix_transactions_destination_wallet_id_created_at", "destination_wallet_id", "created_at"
    ),
    Index(
        "ix_transactions_reverses_transaction_id",
        "reverses_transaction_id",
        postgresql_where=text("reverses_transaction_id IS NOT NULL"),
    ),
    Index(
        "ix_transactions_atomic_group_id",
        "atomic_group_id",
        postgresql_where=text("atomic_group_id IS NOT NULL"),
    ),
    Index(
        "ix_transactions_metadata",
        "metadata",
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
        postgresql_where=text(TAGGED),
    ),
    Index(
        "uq_transactions_reference",
        "organization_id",
        "reference",
        unique=True,
        postgresql_where=text("reference IS NOT NULL"),
    ),
    Index(
        "ix_transactions_pending_multi_postings",
        "postings",
        postgresql_using="gin",
        postgresql_ops={"postings": "jsonb_path_ops"},
        postgresql_where=text("status = 'PENDING' AND kind = 'MULTI'"),
    ),
    Index(
        "ix_transactions_multi_postings",
        "postings",
        postgresql_using="gin",
        postgresql_ops={"postings": "jsonb_path_ops"},
        postgresql_where=text("kind = 'MULTI'"),
    ),
)

hold_actions = Table(
    "hold_actions",
    metadata,
    _uuid_pk(),
    Column("seq", BigInteger, Identity(always=False), nullable=False),
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False),
    Column("transaction_id", UUID(as_uuid=True), ForeignKey("transactions.id"), nullable=False),
    Column("action", String(10), nullable=False),
    Column("amount", BigInteger, nullable=True),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", String(10), nullable=False, server_default=text("'PENDING'")),
    Column("failure_code", String(50), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id"), nullable=True),
    _created_at(),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("organization_id", "idempotency_key"),
    CheckConstraint("action IN ('CAPTURE', 'VOID')", name="action"),
    CheckConstraint("status IN ('PENDING', 'COMPLETED', 'FAILED')", name="status"),
    CheckConstraint("amount IS NULL OR (action = 'CAPTURE' AND amount > 0)", name="amount"),
    CheckConstraint("(status = 'PENDING') = (decided_at IS NULL)", name="decided"),
    Index("ix_hold_actions_pending_seq", "seq", postgresql_where=text("status = 'PENDING'")),
    Index("ix_hold_actions_transaction_id", "transaction_id"),
    Index(
        "uq_hold_actions_completed",
        "transaction_id",
        unique=True,
        postgresql_where=text("status = 'COMPLETED'"),
    ),
)
"""Captures and voids asked of holds, PENDING until a posting batch decides them."""

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("transaction_id", UUID(as_uuid=True), nullable=True),
    Column("settlement_id", UUID(as_uuid=True), ForeignKey("settlements.id"), nullable=True),
    Column("wallet_id", UUID(as_uuid=True), nullable=False),
    Column("organization_id", UUID(as_uuid=True), nullable=False),
    Column("direction", String(6), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    _written_at(),
    CheckConstraint("direction IN ('DEBIT', 'CREDIT')", name="direction"),
    CheckConstraint("(transaction_id IS NULL) <> (settlement_id IS NULL)", name="one_origin"),
    CheckConstraint("amount > 0", name="positive_amount"),
    Index("ix_ledger_entries_wallet_id_id", "wallet_id", "id"),
    Index(
        "ix_ledger_entries_wallet_history",
        "wallet_id",
        text("created_at DESC"),
        text("id DESC"),
    ),
    Index(
        "ix_ledger_entries_debit_window",
        "wallet_id",
        "created_at",
        postgresql_include=["amount"],
        postgresql_where=text("direction = 'DEBIT'"),
    ),
    Index("ix_ledger_entries_transaction_id", "transaction_id"),
    Index(
        "ix_ledger_entries_settlement_id",
        "settlement_id",
        postgresql_where=text("settlement_id IS NOT NULL"),
    ),
    Index(
        "ix_ledger_entries_wallet_settlements",
        "wallet_id",
        "id",
        postgresql_where=text("settlement_id IS NOT NULL"),
    ),
)

wallet_held_changes = Table(
    "wallet_held_changes",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id"), nullable=False),
    Column("held_after", BigInteger, nullable=False),
    _written_at(),
    CheckConstraint("held_after >= 0", name="not_negative"),
    Index(
        "ix_wallet_held_changes_history",
        "wallet_id",
        text("created_at DESC"),
        text("id DESC"),
    ),
)
"""Each change of a wallet's `held`, written by the trigger `wallets_held_history`
(append-only): what holds reserved on the wallet at any instant."""

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(always=True, cache=1), primary_key=True),
    Column(
        "event_id",
        UUID(as_uuid=True),
        nullable=False,
        unique=True,
        server_default=text("vaultcraft_uuid7()"),
    ),
    Column("organization_id", UUID(as_uuid=True), nullable=False),
    Column("type", String(64), nullable=False),
    Column("data", JSONB, nullable=False),
    _created_at(),
    Index("ix_outbox_organization_id_id", "organization_id", "id"),
)
"""Events, written with the change they report; insert-only. Ids come from the identity
alone, drawn after the writing transaction took its transaction id (migration 0027)."""

outbox_relay_cursor = Table(
    "outbox_relay_cursor",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column("position", BigInteger, nullable=False),
    CheckConstraint("singleton", name="one_row"),
)
"""The id of the last outbox event the relay published: every event after it is waiting."""

webhooks = Table(
    "webhooks",
    metadata,
    _uuid_pk(),
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("events", JSONB, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id"), nullable=True),
    _created_at(),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhooks_organization_id", "organization_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _uuid_pk(),
    Column("webhook_id", UUID(as_uuid=True), ForeignKey("webhooks.id"), nullable=False),
    Column("event_id", UUID(as_uuid=True), ForeignKey("outbox.event_id"), nullable=False),
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False),
    Column("status", String(10), nullable=False, server_default=text("'PENDING'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("origin", String(10), nullable=False, server_default=text("'RELAY'")),
    CheckConstraint("status IN ('PENDING', 'SUCCEEDED', 'FAILED')", name="status"),
    CheckConstraint("origin IN ('RELAY', 'REDELIVERY')", name="origin"),
    Index(
        "uq_webhook_deliveries_relayed",
        "webhook_id",
        "event_id",
        unique=True,
        postgresql_where=text("origin = 'RELAY'"),
    ),
    Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
    Index("ix_webhook_deliveries_event_id", "event_id"),
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'PENDING'"),
    ),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("delivery_id", UUID(as_uuid=True), ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    _created_at(),
    Index("ix_webhook_attempts_delivery_id", "delivery_id"),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=True), nullable=True),
    Column("actor_id", UUID(as_uuid=True), nullable=True),
    Column("action", String(64), nullable=False),
    Column("resource_type", String(32), nullable=True),
    Column("resource_id", String(64), nullable=True),
    Column("client_address", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("request_id", String(128), nullable=True),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _created_at(),
    Column("txid", TransactionId, nullable=True, server_default=text("pg_current_xact_id()")),
    Index("ix_audit_logs_organization_id_id", "organization_id", "id"),
    Index("ix_audit_logs_organization_id_action_id", "organization_id", "action", "id"),
    Index("ix_audit_logs_txid_id", "txid", "id", postgresql_where=text("txid IS NOT NULL")),
)
"""Insert-only: the database refuses every UPDATE, DELETE and TRUNCATE. `txid` is the
writing transaction's id, the order the sealer reads records in (NULL for records sealed
before migration 0025)."""

audit_seals = Table(
    "audit_seals",
    metadata,
    Column("record_id", BigInteger, primary_key=True),
    Column("organization_id", UUID(as_uuid=True), nullable=True),
    Column("chain_seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("organization_id", "chain_seq", postgresql_nulls_not_distinct=True),
    CheckConstraint("chain_seq > 0", name="chain_seq_positive"),
)
"""Each audit record's place in its organization's hash chain, written once by the sealer;
insert-only like the records themselves. `record_id` has no foreign key: its check would
lock, and so write, every sealed record; `verify_chain` reports a seal without its record."""

audit_seal_cursor = Table(
    "audit_seal_cursor",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column("txid", TransactionId, nullable=False),
    Column("record_id", BigInteger, nullable=False),
    CheckConstraint("singleton", name="one_row"),
)
"""The last record sealed, as `(txid, record_id)`: the sealer reads on from there."""

settlements = Table(
    "settlements",
    metadata,
    _uuid_pk(),
    Column(
        "payer_organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False
    ),
    Column(
        "payee_organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False
    ),
    Column("currency", String(3), nullable=False),
    Column("gross_payer_to_payee", BigInteger, nullable=False),
    Column("gross_payee_to_payer", BigInteger, nullable=False),
    Column("net_amount", BigInteger, nullable=False),
    Column("transfer_count", Integer, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=True),
    Column("window_end", DateTime(timezone=True), nullable=True),
    Column("status", String(10), nullable=False, server_default=text("'COMPLETED'")),
    _created_at(),
    CheckConstraint("net_amount >= 0", name="net_non_negative"),
    Index("ix_settlements_payer_organization_id_created_at", "payer_organization_id", "created_at"),
    Index("ix_settlements_payee_organization_id_created_at", "payee_organization_id", "created_at"),
)

settlement_items = Table(
    "settlement_items",
    metadata,
    Column("transaction_id", UUID(as_uuid=True), ForeignKey("transactions.id"), primary_key=True),
    Column("leg", Integer, primary_key=True, server_default=text("0")),
    Column("settlement_id", UUID(as_uuid=True), ForeignKey("settlements.id"), nullable=False),
    CheckConstraint("leg >= 0", name="leg"),
    Index("ix_settlement_items_settlement_id", "settlement_id"),
)

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    _uuid_pk(),
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=True),
    Column("mode", String(12), nullable=False, server_default=text("'INCREMENTAL'")),
    Column("status", String(10), nullable=False, server_default=text("'PENDING'")),
    Column("requested_by", UUID(as_uuid=True), ForeignKey("users.id"), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("wallets_checked", BigInteger, nullable=False, server_default=text("0")),
    Column("entries_checked", BigInteger, nullable=False, server_default=text("0")),
    Column("pending_requeued", Integer, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=True),
    _created_at(),
    CheckConstraint("status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')", name="status"),
    Index("ix_reconciliation_runs_created_at", "created_at"),
)

reconciliation_discrepancies = Table(
    "reconciliation_discrepancies",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("run_id", UUID(as_uuid=True), ForeignKey("reconciliation_runs.id"), nullable=False),
    Column("organization_id", UUID(as_uuid=True), nullable=True),
    Column("wallet_id", UUID(as_uuid=True), nullable=True),
    Column("transaction_id", UUID(as_uuid=True), nullable=True),
    Column("settlement_id", UUID(as_uuid=True), nullable=True),
    Column("entry_id", BigInteger, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("kind", String(40), nullable=False),
    Column("expected", BigInteger, nullable=True),
    Column("actual", BigInteger, nullable=True),
    Index("ix_reconciliation_discrepancies_run_id", "run_id"),
)

reconciliation_checkpoints = Table(
    "reconciliation_checkpoints",
    metadata,
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id"), primary_key=True),
    Column("last_entry_id", BigInteger, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

risk_rules = Table(
    "risk_rules",
    metadata,
    _uuid_pk(),
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("wallet_type", String(10), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id"), nullable=True),
    Column("max_amount", BigInteger, nullable=True),
    Column("max_count", Integer, nullable=True),
    Column("window_seconds", Integer, nullable=True),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id"), nullable=True),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("kind IN ('MAX_AMOUNT', 'WINDOW_DEBITS', 'BLOCKED_WALLET')", name="kind"),
    CheckConstraint("max_amount IS NULL OR max_amount > 0", name="positive_max_amount"),
    CheckConstraint("max_count IS NULL OR max_count > 0", name="positive_max_count"),
    CheckConstraint("window_seconds IS NULL OR window_seconds > 0", name="positive_window"),
    Index("ix_risk_rules_organization_id", "organization_id"),
    Index("ix_risk_rules_organization_id_created_at", "organization_id", "created_at", "id"),
)

transfer_rollups = Table(
    "transfer_rollups",
    metadata,
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), primary_key=True),
    Column("grain", Integer, primary_key=True),
    Column("bucket_start", DateTime(timezone=True), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("status", String(10), primary_key=True),
    Column("failure_code", String(50), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("transfer_count", BigInteger, nullable=False),
    Column("volume", Numeric(39, 0), nullable=False),
)
"""Transfers that reached a final state, per organization, time bucket, currency, status
and failure code (`''` when none), so analytics never scans `transactions`. Each change is
counted in a minute bucket and an hour bucket (`grain`: 60 or 3600 seconds), so a day's
chart reads about 24 rows per series, not 1,440. Rows are spread over a few shards (the
writer's backend pid) so concurrent posting batches rarely wait on one row; readers sum
the shards."""

wallet_rollups = Table(
    "wallet_rollups",
    metadata,
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.id"), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("debit_count", BigInteger, nullable=False),
    Column("debit_volume", Numeric(39, 0), nullable=False),
    Column("credit_count", BigInteger, nullable=False),
    Column("credit_volume", Numeric(39, 0), nullable=False),
)
"""Completed transfers per wallet and UTC day, for "top wallets by volume", beside the
wallet's own `counts_day` columns: a day's figures are this row's plus the wallet's when
its `counts_day` is that day. Posting counts on the wallet's row and moves a finished day
here when it next touches the wallet; other paths (a hold's capture) add here directly.
Only the batch holding the wallet's row lock writes a wallet's row, so it never contends."""

api_keys = Table(
    "api_keys",
    metadata,
    _uuid_pk(),
    Column("organization_id", UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("scopes", JSONB, nullable=False),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id"), nullable=False),
    Column("rate_limit_per_s", Integer, nullable=True),
    Column("rate_limit_burst", Integer, nullable=True),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("octet_length(secret_hash) = 32", name="secret_hash_sha256"),
    CheckConstraint("jsonb_typeof(scopes) = 'array'", name="scopes_array"),
    Index("ix_api_keys_organization_id_created_at", "organization_id", "created_at"),
)


batch_requests = Table(
    "batch_requests",
    metadata,
    Column(
        "organization_id",
        UUID(as_uuid=True),
        ForeignKey("organizations.id"),
        primary_key=True,
    ),
    Column("idempotency_key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column(
        "transaction_ids", ARRAY(UUID(as_uuid=True)), nullable=False, server_default=text("'{}'")
    ),
    _created_at(),
)
"""A batch submitted with an `Idempotency-Key`: its fingerprint and what it stored."""
