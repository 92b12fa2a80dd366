"""Which database failures blame the batch rather than one transfer or hold action."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.direct import Savepoint

T = TypeVar("T")

POSTING_ERROR = "posting_error"
"""Failure code of a transfer or hold action the database refused to write."""


SERIALIZATION_OR_DEADLOCK = frozenset({"40001", "40P01"})
"""SQLSTATEs of a transaction PostgreSQL aborted for another's sake: trying again works."""
LOCK_NOT_AVAILABLE = "55P03"
"""SQLSTATE of a statement that waited for a lock longer than its `lock_timeout`."""


def sqlstate(exc: DBAPIError) -> str:
    """The SQLSTATE of the driver's error, or "" when it has none."""
    return getattr(exc.orig, "sqlstate", None) or ""


def is_conflict(exc: BaseException) -> bool:
    """A lost connection or a serialization, deadlock or lock-timeout conflict: retry the
    whole batch later rather than blame one transfer."""
    if not isinstance(exc, DBAPIError):
        return False
    state = sqlstate(exc)
    return (
        exc.connection_invalidated
        or state in SERIALIZATION_OR_DEADLOCK
        or state == LOCK_NOT_AVAILABLE
        or state.startswith("08")
    )


def written_or_refused(savepoint: Savepoint, write: Callable[[], T]) -> T | Exception:
    """What `write` returns, or the error the database refused it with, the transaction
    rolled back to `savepoint` (set before the write). A conflict or a lost connection is
    raised: the whole batch is retried, no transfer or action is blamed."""
    try:
        return write()
    except Exception as exc:
        if is_conflict(exc):
            raise
        savepoint.rollback()
        return exc
