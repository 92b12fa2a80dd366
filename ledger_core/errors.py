"""Typed domain errors. Each carries the stable `code` clients branch on.

No error here knows about HTTP: the gateway alone maps codes to statuses
(`gateway/error_statuses.py`).
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal the caller can act on; never a bug."""

    code = "invalid_request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidAmount(DomainError):
    code = "invalid_amount"


class InvalidCurrency(DomainError):
    code = "invalid_currency"


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"


class SameWallet(DomainError):
    code = "same_wallet"


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class Conflict(DomainError):
    code = "conflict"


class EmailTaken(Conflict):
    code = "email_taken"


class WalletNotEmpty(Conflict):
    code = "wallet_not_empty"


class SystemWalletExists(Conflict):
    code = "system_wallet_exists"


class InvalidStatusTransition(Conflict):
    code = "invalid_status_transition"


class NotCancellable(Conflict):
    code = "not_cancellable"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"


class ReferenceTaken(DomainError):
    """Another transfer of the organization already carries this `reference`."""

    code = "reference_taken"


class ReversalExceedsOriginal(DomainError):
    code = "reversal_exceeds_original"


class NotReversible(Conflict):
    code = "not_reversible"


class NotHeld(Conflict):
    code = "not_held"


class CaptureExceedsHold(DomainError):
    code = "capture_exceeds_hold"


class OverdraftInUse(Conflict):
    code = "overdraft_in_use"


class InsufficientScope(DomainError):
    code = "insufficient_scope"


class LastAdmin(Conflict):
    code = "last_admin"


class WrongPassword(DomainError):
    code = "wrong_password"
