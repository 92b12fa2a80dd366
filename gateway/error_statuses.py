"""The one table from a domain error's stable `code` to its HTTP status.

`ledger_core` raises errors that know nothing of HTTP; this table is the only place a
code becomes a status. Codes not listed are refusals of the input: 422.
"""

from __future__ import annotations

from ledger_core.errors import DomainError
from ledger_core.intents import BatchRefused

DEFAULT_STATUS = 422

STATUS_BY_CODE: dict[str, int] = {
    "not_found": 404,
    "forbidden": 403,
    "conflict": 409,
    "email_taken": 409,
    "wallet_not_empty": 409,
    "system_wallet_exists": 409,
    "invalid_status_transition": 409,
    "not_cancellable": 409,
    "not_reversible": 409,
    "not_held": 409,
    "overdraft_in_use": 409,
    "too_many_webhooks": 409,
    "counterparty_exists": 409,
    "reference_taken": 409,
    "insufficient_scope": 403,
    "last_admin": 409,
}


def status_of(error: DomainError) -> int:
    """The HTTP status a domain error is rendered with.

    A refused batch takes the status its refusals share (all `404`: a `404`), else 422.
    """
    if isinstance(error, BatchRefused):
        statuses = {status_of(failure) for _, failure in error.failures}
        return statuses.pop() if len(statuses) == 1 else DEFAULT_STATUS
    return STATUS_BY_CODE.get(error.code, DEFAULT_STATUS)
