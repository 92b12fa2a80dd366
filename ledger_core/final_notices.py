"""What a final notification (`channels.FINAL_CHANNEL`) says.

Whoever makes transactions final in a database transaction also notifies their ids,
comma-separated, so that long polls (`?wait=`) wake at its commit. A posting batch adds
one more item, `=<moment>|<letters>`: one letter per id before it, `C` for a transaction
now COMPLETED (its `posted_at` is the moment), `H` for one now HELD, `-` for any other
outcome. Nothing else of a COMPLETED or HELD transaction's row changed, so a waiter that
holds the row as it was stored can answer from it without reading it again. A FAILED
transfer gets `-`: its failure message is not worth the payload's room.

The states item is not an id, so a reader that knows only ids (a gateway of an earlier
release, during a rolling upgrade) skips it and reads the rest as before. PostgreSQL caps
a payload at 8000 bytes: 200 ids to a payload (37 characters each with its comma, one
letter each, and a moment of 32).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

CHUNK = 200
STATES = "="
"""What the states item begins with; no id does."""
LETTERS = {"COMPLETED": "C", "HELD": "H"}
CARRIED = {letter: status for status, letter in LETTERS.items()}
NOT_CARRIED = "-"


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
    """Payloads naming each decided transaction (id, status), with the states carried."""
    states = f"{STATES}{at.isoformat()}|"
    chunks = []
    for n in range(0, len(decided), CHUNK):
        part = decided[n : n + CHUNK]
        letters = "".join(LETTERS.get(status, NOT_CARRIED) for _, status in part)
        chunks.append(",".join([*(str(i) for i, _ in part), states + letters]))
    return chunks


def read_payload(payload: str) -> list[tuple[str, FinalState | None]]:
    """Each named id (as its text) with its state when the payload carries it. States that
    do not read as a moment and one letter per id are ignored: the ids are named alone."""
    items = payload.split(",")
    states = items.pop() if items[-1].startswith(STATES) else ""
    moment, _, letters = states[len(STATES) :].partition("|")
    at = _moment(moment) if len(letters) == len(items) else None
    if at is None:
        return [(raw, None) for raw in items]
    return [
        (raw, FinalState(CARRIED[letter], at) if letter in CARRIED else None)
        for raw, letter in zip(items, letters, strict=True)
    ]


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None
