"""What the client raises: the server's problem details, or a transfer that did not finish."""

from __future__ import annotations

from typing import Any


class VaultCraftError(Exception):
    """Base class of everything this client raises on purpose."""


class ApiError(VaultCraftError):
    """An RFC 9457 problem answer: branch on `code` (stable), show `detail` to people.

    `errors` lists the fields at fault (`[{"field": ..., "message": ...}]`), `status` is
    the HTTP status, `retry_after` the server's `Retry-After` in seconds when it sent one.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or []
        self.request_id = request_id
        self.retry_after = retry_after
        self.problem = problem or {}


class TransferNotFinal(VaultCraftError):
    """`wait_final` ran out of time while the transfer was still PENDING."""

    def __init__(self, transaction: dict[str, Any]) -> None:
        super().__init__(f"transaction {transaction['id']} is still {transaction['status']}")
        self.transaction = transaction


class InvalidSignature(VaultCraftError):
    """A webhook request whose `VaultCraft-Signature` does not check out."""
