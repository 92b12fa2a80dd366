"""Examples shown in the OpenAPI document and Swagger UI: one request body per body model,
whole response bodies of the main resources, and a problem body per error status.

Keyed by model name (or status); `tests/gateway/test_openapi_complete.py` parses each
example with its model, so an example that stops being valid fails the tests.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from gateway.responses import PROBLEM_TYPE_PREFIX

_WALLET_A = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e01"
_WALLET_B = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e02"
_ORG = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e03"
_PARTNER_WALLET = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e04"
"""A wallet of another organization that accepts `_ORG` as a counterparty."""
_TRANSFER = {
    "source_wallet_id": _WALLET_A,
    "destination_wallet_id": _WALLET_B,
    "amount": "25.00",
    "currency": "INR",
    "description": "Order 4711",
    "metadata": {"order_id": "4711"},
}

BODY_EXAMPLES: dict[str, dict[str, Any]] = {
    "Signup": {
        "email": "ada@example.com",
        "password": "correct horse battery",
        "full_name": "Ada Lovelace",
        "organization_name": "Analytical Engines Ltd",
        "default_currency": "INR",
    },
    "Login": {"email": "ada@example.com", "password": "correct horse battery"},
    "CreateUser": {
        "email": "grace@example.com",
        "password": "another long secret",
        "full_name": "Grace Hopper",
        "role": "MEMBER",
    },
    "UpdateUser": {"role": "ADMIN"},
    "ChangePassword": {
        "current_password": "correct horse battery",
        "new_password": "a longer passphrase now",
    },
    "CreateApiKey": {
        "name": "Payouts service",
        "scopes": ["transfers:write", "wallets:read"],
        "rate_limit_per_s": 50,
    },
    "CreateWallet": {"type": "PRIMARY", "currency": "INR", "name": "Spending"},
    "UpdateWallet": {"status": "LOCKED"},
    "CreateTransfer": _TRANSFER,
    "CreateBatch": {
        "transfers": [{**_TRANSFER, "idempotency_key": "order-4711-line-1"}],
        "atomic": False,
    },
    "ReverseTransfer": {"amount": "10.00"},
    "CreateMulti": {
        "postings": [
            {
                "source_wallet_id": _WALLET_A,
                "destination_wallet_id": _PARTNER_WALLET,
                "amount": "20.00",
                "currency": "INR",
            },
            {
                "source_wallet_id": _WALLET_A,
                "destination_wallet_id": _WALLET_B,
                "amount": "5.00",
                "currency": "INR",
            },
        ],
        "description": "Order 4711: the seller's share to its organization, our fee to us",
    },
    "CaptureHold": {"amount": "15.00"},
    "VoidHold": {},
    "AddCounterparty": {"organization_id": _ORG},
    "CreateRiskRule": {
        "kind": "MAX_AMOUNT",
        "wallet_type": "PRIMARY",
        "currency": "INR",
        "max_amount": "50000.00",
    },
    "UpdateRiskRule": {"max_amount": "75000.00"},
    "RequestReconciliation": {"mode": "INCREMENTAL"},
    "UpdateWebhook": {"events": ["transfer.completed"], "is_active": True},
    "CreateWebhook": {
        "url": "https://hooks.example.com/vaultcraft",
        "events": ["transfer.completed", "transfer.failed"],
    },
}

_TRANSACTION = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e10"
_USER = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e20"
_AT = "2026-12-04T10:15:30.120000Z"
_POSTED = "2026-12-04T10:15:30.180000Z"

RESPONSE_EXAMPLES: dict[str, Any] = {
    "TransactionOut": {
        "id": _TRANSACTION,
        "organization_id": _ORG,
        "destination_organization_id": _ORG,
        "idempotency_key": "order-4711-payout",
        "kind": "TRANSFER",
        "source_wallet_id": _WALLET_A,
        "destination_wallet_id": _WALLET_B,
        "amount": "25.00",
        "currency": "INR",
        "status": "PENDING",
        "failure_code": None,
        "failure_message": None,
        "description": "Order 4711",
        "metadata": {"order_id": "4711"},
        "reference": None,
        "reverses_transaction_id": None,
        "atomic_group_id": None,
        "created_at": _AT,
        "posted_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "hold_amount": None,
        "hold_expires_at": None,
        "postings": None,
    },
    "EntryOut": {
        "id": 912345,
        "transaction_id": _TRANSACTION,
        "settlement_id": None,
        "wallet_id": _WALLET_A,
        "direction": "DEBIT",
        "amount": "25.00",
        "currency": "INR",
        "balance_after": "1225.00",
        "created_at": _POSTED,
    },
    "WalletOut": {
        "id": _WALLET_A,
        "organization_id": _ORG,
        "user_id": _USER,
        "type": "PRIMARY",
        "currency": "INR",
        "status": "ACTIVE",
        "balance": "1250.00",
        "available_balance": "1200.00",
        "held": "50.00",
        "overdraft_limit": "0.00",
        "name": "Spending",
        "metadata": {"team": "payouts"},
        "created_at": "2026-11-02T08:00:00Z",
        "updated_at": _POSTED,
    },
    "UserOut": {
        "id": _USER,
        "organization_id": _ORG,
        "email": "grace@example.com",
        "full_name": "Grace Hopper",
        "role": "MEMBER",
        "is_active": True,
        "created_at": "2026-11-02T08:00:00Z",
    },
}
"""Whole response bodies of the main resources, keyed by model name. Other responses'
examples are built from their schema (`gateway.openapi_examples`), using these for the
models they contain: a batch, a page of transfers or a transfer's ledger shows these."""

_PROBLEMS: dict[int, tuple[str, str, list[dict[str, str]]]] = {
    400: ("bad_request", "the request is not valid HTTP/1.1", []),
    401: ("unauthorized", "the access token is missing, invalid or expired", []),
    403: ("forbidden", "only an admin may do this", []),
    404: ("not_found", "no such wallet", []),
    409: ("not_cancellable", "transaction is COMPLETED", []),
    413: ("payload_too_large", "request bodies are limited to 1048576 bytes", []),
    415: ("unsupported_media_type", "send the body as application/json", []),
    422: (
        "invalid_amount",
        "amount has more decimal places than INR allows",
        [{"field": "amount", "message": "at most 2 decimal places for INR"}],
    ),
    429: ("rate_limited", "too many requests; slow down", []),
    431: ("request_header_fields_too_large", "the request's headers are too large", []),
    503: (
        "service_unavailable",
        "not ready: postgresql unreachable: TimeoutError",
        [{"field": "postgresql", "message": "unreachable: TimeoutError"}],
    ),
}


def problem_example(status: int) -> dict[str, Any]:
    """A typical problem body for `status`, as the gateway renders it (RFC 9457)."""
    code, detail, errors = _PROBLEMS[status]
    return {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": errors,
    }
