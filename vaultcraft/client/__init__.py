"""A Python client for the VaultCraft HTTP API. It needs only `httpx`
(`pip install 'vaultcraft[client]'`) and never imports the server's dependencies.

`VaultCraftClient` for the API, `ApiError` for its problems, `parse_event` /
`verify_signature` for webhook receivers.
"""

from __future__ import annotations

from vaultcraft.client.client import VaultCraftClient
from vaultcraft.client.errors import ApiError, InvalidSignature, TransferNotFinal, VaultCraftError
from vaultcraft.client.session import RetryPolicy
from vaultcraft.client.signatures import parse_event, verify_signature
from vaultcraft.client.transfers import new_idempotency_key

__all__ = [
    "ApiError",
    "InvalidSignature",
    "RetryPolicy",
    "TransferNotFinal",
    "VaultCraftClient",
    "VaultCraftError",
    "new_idempotency_key",
    "parse_event",
    "verify_signature",
]
