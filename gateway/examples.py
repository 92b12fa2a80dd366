"""One example request body per body model, shown in the OpenAPI document and Swagger UI.

Keyed by model name; `tests/gateway/test_openapi_complete.py` parses each example with
its model, so an example that stops being valid fails the tests.
"""

from __future__ import annotations

from typing import Any

_WALLET_A = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e01"
_WALLET_B = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e02"
_ORG = "0190f3a2-6a8e-7c41-9d2e-5b1f0c3d4e03"
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
            {k: _TRANSFER[k] for k in ("source_wallet_id", "destination_wallet_id", "currency")}
            | {"amount": "20.00"},
            {k: _TRANSFER[k] for k in ("source_wallet_id", "destination_wallet_id", "currency")}
            | {"amount": "5.00"},
        ],
        "description": "Order 4711 with fee",
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
