"""Which database failures blame the batch rather than one transfer or hold action."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

POSTING_ERROR = "posting_error"
"""Failure code of a transfer or hold action the database refused to write."""


def is_conflict(exc: BaseException) -> bool:
    """A lost connection or a serialization, deadlock or lock-timeout conflict: retry the
    whole batch later rather than blame one transfer."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return (
        exc.connection_invalidated
        or sqlstate in {"40001", "40P01", "55P03"}
        or sqlstate.startswith("08")
    )
