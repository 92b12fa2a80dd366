"""Where a page of a newest-first list ends; the gateway turns it into an opaque cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class Keyset:
    """Where a page ends: the sort key of its last row."""

    created_at: datetime
    id: UUID | int
