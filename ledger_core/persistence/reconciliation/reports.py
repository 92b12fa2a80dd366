"""Reconciliation runs as one organization's admin may see them, and requests for new runs.

A run is ledger-wide: it checks every organization's books at once. Which runs an admin
sees:

- runs nobody asked for over the API (the scheduler's, `vaultcraft reconcile`): everyone;
- runs an organization asked for: that organization, and any organization the run found
  discrepancies for (it was told so by a `reconciliation.drift_detected` event naming the
  run). To anyone else such a run does not exist (`404`), like every other tenant's
  resource.

What a run found is always filtered: every discrepancy is stored with the organization
whose books it is in (`reconciliation_discrepancies.organization_id`), and a reader only
ever gets the rows of their own organization. Ledger-wide sums carry no organization and
are never shown here; an organization whose books are off also has its own
`organization_sum_nonzero`. Who asked for a run is shown only to the organization that
asked: another tenant's user ids never leave this module.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal
from ledger_core.keyset import Keyset
from ledger_core.money import format_amount
from ledger_core.persistence.pages import newest_first, read_page
from ledger_core.persistence.tables import reconciliation_discrepancies as found
from ledger_core.persistence.tables import reconciliation_runs as runs
from ledger_core.reconciliation import Kind, Mode
from ledger_core.timestamps import rfc3339, rfc3339_or_none

DISCREPANCY_LIMIT = 1000
"""A run report lists at most this many discrepancies; `discrepancy_count` counts them all."""

REQUESTED = "reconciliation.requested"

COUNT_KINDS = frozenset({Kind.UNPOSTED_WITH_ENTRIES, Kind.STUCK_PENDING})
"""Kinds whose `expected` and `actual` count rows; every other kind measures money."""


def _visible_to(organization_id: UUID) -> Any:
    """Scheduled runs, the organization's own requests, and runs that found its drift."""
    return or_(
        runs.c.organization_id.is_(None),
        runs.c.organization_id == organization_id,
        exists().where(found.c.run_id == runs.c.id, found.c.organization_id == organization_id),
    )


def _own_count(organization_id: UUID) -> Any:
    return (
        select(func.count())
        .where(found.c.run_id == runs.c.id, found.c.organization_id == organization_id)
        .correlate(runs)
        .scalar_subquery()
        .label("discrepancy_count")
    )


@dataclass(frozen=True)
class RunSummary:
    """A run's state and counts, with the caller's share of what it found."""

    id: UUID
    status: str
    mode: str
    requested_by: UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    wallets_checked: int
    entries_checked: int
    discrepancy_count: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "status": self.status,
            "mode": self.mode,
            "requested_by": None if self.requested_by is None else str(self.requested_by),
            "created_at": rfc3339(self.created_at),
            "started_at": rfc3339_or_none(self.started_at),
            "finished_at": rfc3339_or_none(self.finished_at),
            "wallets_checked": self.wallets_checked,
            "entries_checked": self.entries_checked,
            "discrepancy_count": self.discrepancy_count,
        }


def _summary(row: Row[*tuple[Any, ...]], reader: Principal) -> RunSummary:
    own = row.organization_id == reader.organization_id
    return RunSummary(
        id=row.id,
        status=row.status,
        mode=row.mode,
        requested_by=row.requested_by if own else None,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        wallets_checked=int(row.wallets_checked),
        entries_checked=int(row.entries_checked),
        discrepancy_count=int(row.discrepancy_count),
    )


def discrepancy_json(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    """One finding; `expected`/`actual` are decimal strings (money) or digit strings (counts)."""
    kind = Kind(row.kind)
    unit = measure_unit(kind)
    return {
        "kind": kind.value,
        "wallet_id": _str(row.wallet_id),
        "transaction_id": _str(row.transaction_id),
        "settlement_id": _str(row.settlement_id),
        "entry_id": row.entry_id,
        "currency": row.currency,
        "expected": render_measure(kind, row.expected, row.currency),
        "actual": render_measure(kind, row.actual, row.currency),
        "unit": unit,
    }


async def request_run(conn: AsyncConnection, who: Principal, mode: Mode) -> RunSummary:
    """A PENDING run asked for by an admin, in the caller's transaction."""
    row = (
        await conn.execute(
            runs.insert()
            .values(
                id=uuid.uuid4(),
                organization_id=who.organization_id,
                requested_by=who.user_id,
                mode=mode.value,
                status="PENDING",
            )
            .returning(*runs.c, literal(0).label("discrepancy_count"))
        )
    ).one()
    return _summary(row, who)


async def list_runs(
    conn: AsyncConnection, who: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[RunSummary], Keyset | None]:
    """The runs the reader may see, newest first, each counting only the reader's findings."""
    stmt = newest_first(
        select(*runs.c, _own_count(who.organization_id)).where(_visible_to(who.organization_id)),
        runs.c.created_at,
        runs.c.id,
        after,
        limit,
    )
    page, next_key = await read_page(conn, stmt, limit)
    return [_summary(r, who) for r in page], next_key


async def run_report(
    conn: AsyncConnection, who: Principal, run_id: UUID
) -> tuple[RunSummary, list[dict[str, Any]]] | None:
    """A run and the reader's organization's discrepancies in it (the first 1000, by id);
    None for a run the reader may not see."""
    row = (
        await conn.execute(
            select(*runs.c, _own_count(who.organization_id)).where(
                runs.c.id == run_id, _visible_to(who.organization_id)
            )
        )
    ).first()
    if row is None:
        return None
    rows = (
        await conn.execute(
            select(found)
            .where(found.c.run_id == run_id, found.c.organization_id == who.organization_id)
            .order_by(found.c.id)
            .limit(DISCREPANCY_LIMIT)
        )
    ).all()
    return _summary(row, who), [discrepancy_json(r) for r in rows]


def measure_unit(kind: Kind) -> str:
    """`count` for kinds that count transfers or entries, `money` for the rest."""
    return "count" if kind in COUNT_KINDS else "money"


def render_measure(kind: Kind, value: int | None, currency: str | None) -> str | None:
    """An `expected` or `actual` as shown to people: money in major units, counts as digits."""
    if value is None:
        return None
    if measure_unit(kind) == "money" and currency is not None:
        return format_amount(int(value), currency)
    return str(int(value))


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)
