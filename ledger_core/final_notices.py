"""What a final notification (`channels.FINAL_CHANNEL`) says.

Whoever makes transactions final in a database transaction also notifies their ids, so
that long polls (`?wait=`) wake at its commit. A payload is either plain ids,
comma-separated, or a posting batch's `<moment>;<item>,<item>,...`, where an item is an id
or `<id>:<STATUS>`: that transaction is now COMPLETED or HELD, decided at the moment
(its `posted_at` when COMPLETED), with no failure. Nothing else of its row changed, so a
waiter that holds the row as it was stored can answer from it without reading it again.
A FAILED transfer is named by its id alone: its message is not worth a payload's room.

PostgreSQL caps a payload at 8000 bytes: ids go 150 to a chunk (an item with its status
is 46 characters, a moment 32).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

CHUNK = 150
CARRIED = ("COMPLETED", "HELD")
"""The statuses a notification carries; a transaction in any other is named by id only."""


@dataclass(frozen=True, slots=True)
class FinalState:
    """A transaction's state as its final notification gives it."""

    status: str
    at: datetime

    def applied_to(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The row `stored` (as its intake stored it, PENDING) once it reached this state."""
        return {
            **stored,
            "status": self.status,
            "failure_code": None,
            "failure_message": None,
            "posted_at": self.at if self.status == "COMPLETED" else None,
            "failed_at": None,
        }


def id_chunks(ids: Sequence[UUID]) -> list[str]:
    """Payloads naming `ids`, without their states."""
    return [",".join(str(i) for i in ids[n : n + CHUNK]) for n in range(0, len(ids), CHUNK)]


def state_chunks(decided: Sequence[tuple[UUID, str]], at: datetime) -> list[str]:
    """Payloads naming each decided transaction (id, status), with its state when carried."""
    moment = at.isoformat()
    items = [f"{i}:{status}" if status in CARRIED else str(i) for i, status in decided]
    return [f"{moment};" + ",".join(items[n : n + CHUNK]) for n in range(0, len(items), CHUNK)]


def read_payload(payload: str) -> list[tuple[str, FinalState | None]]:
    """Each named id (as its text) with its state when the payload carries it. Anything
    that does not read as a moment or a status is ignored: the id is then named alone."""
    head, _, body = payload.rpartition(";")
    at = _moment(head) if head else None
    named: list[tuple[str, FinalState | None]] = []
    for item in body.split(","):
        raw, _, status = item.partition(":")
        named.append((raw, FinalState(status, at) if at and status in CARRIED else None))
    return named


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None
