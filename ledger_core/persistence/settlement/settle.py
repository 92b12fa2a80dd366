"""Where settlement is written: one database transaction per pair of organizations and currency.

`settle_pair`, inside the caller's transaction:

1. makes sure both organizations have a SYSTEM wallet in the currency;
2. locks the four wallets it will move (both CLEARING wallets of the pair, both SYSTEM
   wallets) in id order, the global order the posting worker locks in too, so the two
   never deadlock. Both use `FOR NO KEY UPDATE`: it excludes every other writer of the
   row but not the `KEY SHARE` locks of the foreign keys that still name wallets
   (reconciliation checkpoints, held changes). Transfers being accepted meanwhile take no
   lock on their wallets at all (their references are checked by statement, migration
   0029);
3. only then reads the COMPLETED cross-organization transfers of the pair, and the
   cross-organization legs of COMPLETED multi-leg transactions between them, that are in
   no settlement yet;
4. writes the settlement, its items, the entries that bring both clearing wallets back to
   zero, and a `settlement.completed` event for each organization.

Why this is exact under concurrency. Posting a cross-organization transfer locks the same
two clearing wallets. Holding them, and reading afterwards (READ COMMITTED takes a new
snapshot per statement), settlement sees every transfer whose posting committed before
it, and no transfer of the pair can post until it commits: the claimed transfers are
exactly what the clearing balances hold, which is checked before anything is written. A
transfer posting during a run waits for the locks and lands in the next settlement. Two
runs racing on a pair queue on the same locks; the second then sees the first's
`settlement_items` and finds nothing (or only what posted in between). Should anything
slip past all that, the primary key of `settlement_items` (transaction and leg) refuses to
put one transfer, or one leg, in two settlements and the whole pair's transaction rolls
back. A multi-leg transaction with legs into several organizations is settled leg by leg,
each leg with its own pair; it posts under the clearing wallets of every one of them.

Cost: a run reads what came since the last settlement, not the pairs' history. Every
cross-organization transfer and leg writes an entry on both clearing wallets of its pair,
and so does every settlement with a non-zero net. Entries on one wallet are written under
that wallet's lock, so their ids follow the order in which their transactions committed:
everything on a clearing wallet before its newest settlement entry was there when that
settlement read, and is settled. A run therefore looks only at the transactions with
entries after that point (the mark is one probe of `ix_ledger_entries_wallet_settlements`,
the entries after it a range of `ix_ledger_entries_wallet_id_id`), and the anti-join
against `settlement_items` still decides what is unsettled (a settlement that nets to
zero writes no entry, so what it settled is read again and found settled). Should the
reasoning ever miss a transfer, `_check_clearing` finds the clearing balances disagreeing
and the pair is skipped, not settled short.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from ledger_core.persistence.events.outbox import SETTLEMENT_COMPLETED, outbox_insert
from ledger_core.persistence.tables import settlements
from ledger_core.posting import CREDIT, fits_int64
from ledger_core.settlement import (
    CrossOrgTransfer,
    Netting,
    PairWallets,
    Settlement,
    expected_clearing_balance,
    net_transfers,
    settlement_legs,
)

log = logging.getLogger("vaultcraft.settlement")

CROSS_ORG_MULTI = "t.kind = 'MULTI' AND t.postings @? '$[*].destination_organization_id'"
"""Multi-leg transactions with a leg into another organization."""

PAIR_CLEARING = """
    w.type = 'CLEARING' AND w.currency = :currency
    AND ((w.organization_id = :a AND w.counterparty_organization_id = :b)
         OR (w.organization_id = :b AND w.counterparty_organization_id = :a))
"""
"""Both clearing wallets of one pair in one currency."""

ANY_CLEARING = """
    w.type = 'CLEARING' AND (CAST(:org AS uuid) IS NULL
                             OR CAST(:org AS uuid) IN (w.organization_id,
                                                       w.counterparty_organization_id))
"""
"""Every clearing wallet, or every clearing wallet of `:org`'s pairs."""


def _unsettled(clearing: str) -> str:
    """What settlement nets, among the transactions with entries after the last settlement
    on the clearing wallets that `clearing` selects (see the module's docstring): each
    COMPLETED cross-organization transfer (leg 0) and each cross-organization leg of a
    COMPLETED multi-leg transaction (leg n, counted from 1) that is in no settlement yet.

    Each of those transactions is read once, by its primary key (`posted`; `OFFSET 0`
    keeps the planner from turning the lookup into a scan of `transactions` joined to
    them)."""
    return f"""
    WITH fresh AS (
        SELECT DISTINCT e.transaction_id AS id
        FROM wallets w
        CROSS JOIN LATERAL (
            SELECT coalesce(max(s.id), 0) AS settled_to FROM ledger_entries s
            WHERE s.wallet_id = w.id AND s.settlement_id IS NOT NULL
        ) AS mark
        JOIN ledger_entries e ON e.wallet_id = w.id AND e.id > mark.settled_to
        WHERE {clearing} AND e.transaction_id IS NOT NULL
    ), posted AS (
        SELECT t.* FROM fresh CROSS JOIN LATERAL (
            SELECT id, organization_id, destination_organization_id, kind, currency, amount,
                   postings, posted_at, seq
            FROM transactions WHERE id = fresh.id AND status = 'COMPLETED'
            OFFSET 0
        ) AS t
    ), items AS (
        SELECT t.id, 0 AS leg, t.organization_id AS payer, t.destination_organization_id AS payee,
               t.currency, t.amount, t.posted_at, t.seq
        FROM posted t
        WHERE t.kind = 'CROSS_ORG'
        UNION ALL
        SELECT t.id, CAST(l.n AS int), t.organization_id,
               CAST(l.leg ->> 'destination_organization_id' AS uuid), l.leg ->> 'currency',
               CAST(l.leg ->> 'amount' AS bigint), t.posted_at, t.seq
        FROM posted t
        CROSS JOIN LATERAL jsonb_array_elements(t.postings) WITH ORDINALITY AS l(leg, n)
        WHERE {CROSS_ORG_MULTI} AND l.leg ? 'destination_organization_id'
    )
    SELECT i.* FROM items i
    WHERE NOT EXISTS (
        SELECT 1 FROM settlement_items s WHERE s.transaction_id = i.id AND s.leg = i.leg)
"""


UNSETTLED_PAIRS = text(f"""
    SELECT DISTINCT least(u.payer, u.payee) AS org_a, greatest(u.payer, u.payee) AS org_b,
           u.currency
    FROM ({_unsettled(ANY_CLEARING)}) u
    WHERE CAST(:org AS uuid) IS NULL OR CAST(:org AS uuid) IN (u.payer, u.payee)
    ORDER BY org_a, org_b, u.currency
""")

ENSURE_SYSTEM = text("""
    INSERT INTO wallets (organization_id, type, currency, name)
    SELECT o, 'SYSTEM', :currency, 'System' FROM unnest(CAST(:orgs AS uuid[])) AS o
    ON CONFLICT (organization_id, currency) WHERE type = 'SYSTEM' DO NOTHING
""")

LOCK_PAIR_WALLETS = text("""
    SELECT id, organization_id, type, balance FROM wallets
    WHERE currency = :currency AND organization_id IN (:a, :b)
      AND (type = 'SYSTEM' OR (type = 'CLEARING' AND counterparty_organization_id IN (:a, :b)))
    ORDER BY id
    FOR NO KEY UPDATE
""")

UNSETTLED_OF_PAIR = text(f"""
    SELECT u.id, u.leg, u.payer, u.payee, u.amount, u.posted_at FROM ({_unsettled(PAIR_CLEARING)}) u
    WHERE u.currency = :currency
      AND ((u.payer = :a AND u.payee = :b) OR (u.payer = :b AND u.payee = :a))
    ORDER BY u.seq, u.leg
""")

INSERT_ITEMS = text("""
    INSERT INTO settlement_items (transaction_id, leg, settlement_id)
    SELECT v.t, v.leg, CAST(:settlement_id AS uuid)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:legs AS int[])) AS v(t, leg)
""")

INSERT_ENTRIES = text("""
    INSERT INTO ledger_entries
        (settlement_id, wallet_id, organization_id, direction, amount, currency, balance_after)
    SELECT CAST(:settlement_id AS uuid), v.wallet_id, v.organization_id, v.direction, :amount,
           :currency, v.balance_after
    FROM unnest(CAST(:wallet_ids AS uuid[]), CAST(:organization_ids AS uuid[]),
                CAST(:directions AS text[]), CAST(:balances AS bigint[]))
         WITH ORDINALITY AS v(wallet_id, organization_id, direction, balance_after, n)
    ORDER BY v.n
""")

UPDATE_BALANCE = text("UPDATE wallets SET balance = :balance, updated_at = now() WHERE id = :id")


class SkippedPair(RuntimeError):
    """A pair that cannot be settled now: nothing is written for it, the run goes on."""

    reason = "skipped"


class ClearingMismatch(SkippedPair):
    """The clearing wallets do not hold what the unsettled transfers put there: ledger drift.

    Nothing is written for the pair; reconciliation reports the drift.
    """

    reason = "clearing_mismatch"


class SettlementOutOfRange(SkippedPair):
    """A gross total or a SYSTEM balance of the settlement would not fit 64 bits.

    The pair stays unsettled (its transfers are already posted; the positions remain in
    the clearing wallets) until an operator settles it in smaller parts.
    """

    reason = "amount_out_of_range"


@dataclass(frozen=True)
class Pair:
    """Two organizations (in id order) and a currency they have moved money in."""

    org_a: UUID
    org_b: UUID
    currency: str


@dataclass(frozen=True)
class _Locked:
    id: UUID
    organization_id: UUID
    type: str
    balance: int


def unsettled_pairs(conn: Connection, organization_id: UUID | None = None) -> list[Pair]:
    """Pairs with COMPLETED cross-organization transfers or legs in no settlement yet."""
    rows = conn.execute(UNSETTLED_PAIRS, {"org": organization_id})
    return [Pair(r.org_a, r.org_b, r.currency) for r in rows]


def run_settlement(
    conn: Connection,
    organization_id: UUID | None = None,
    skipped: list[SkippedPair] | None = None,
) -> list[Settlement]:
    """Settle every pair (or every pair of `organization_id`), each in its own transaction.

    `conn` must not be in a transaction. A pair whose clearing wallets disagree with its
    transfers, or whose totals would leave the 64-bit range, is logged, added to `skipped`
    and left alone; the others still settle. Safe to run twice or concurrently: a run that
    finds nothing left writes nothing.
    """
    with conn.begin():
        pairs = unsettled_pairs(conn, organization_id)
    written: list[Settlement] = []
    for pair in pairs:
        try:
            with conn.begin():
                settlement = settle_pair(conn, pair)
        except SkippedPair as exc:
            log.error("Settlement of %s skipped (%s): %s.", pair, exc.reason, exc)
            if skipped is not None:
                skipped.append(exc)
            continue
        if settlement is not None:
            written.append(settlement)
    return written


def settle_pair(conn: Connection, pair: Pair) -> Settlement | None:
    """Settle one pair in the caller's open (READ COMMITTED) transaction; None if nothing left."""
    conn.execute(ENSURE_SYSTEM, {"orgs": [pair.org_a, pair.org_b], "currency": pair.currency})
    locked = _lock_wallets(conn, pair)
    transfers = [
        CrossOrgTransfer(r.id, r.payer, r.payee, r.amount, r.posted_at, r.leg)
        for r in conn.execute(UNSETTLED_OF_PAIR, _pair_params(pair))
    ]
    if not transfers:
        return None
    netting = net_transfers(pair.org_a, pair.org_b, transfers)
    wallets = _pair_wallets(locked, netting)
    _check_clearing(locked, wallets, netting)
    _check_range(locked, wallets, netting)
    settlement = _insert_settlement(conn, pair.currency, netting)
    conn.execute(
        INSERT_ITEMS,
        {
            "settlement_id": settlement.id,
            "ids": [t.id for t in transfers],
            "legs": [t.leg for t in transfers],
        },
    )
    _post_entries(conn, settlement, locked, settlement_legs(netting, wallets))
    data = settlement.as_json()
    for org in (settlement.payer_organization_id, settlement.payee_organization_id):
        conn.execute(outbox_insert(SETTLEMENT_COMPLETED, org, data))
    return settlement


def _pair_params(pair: Pair) -> dict[str, Any]:
    return {"a": pair.org_a, "b": pair.org_b, "currency": pair.currency}


def _lock_wallets(conn: Connection, pair: Pair) -> dict[UUID, _Locked]:
    rows = conn.execute(LOCK_PAIR_WALLETS, _pair_params(pair))
    return {r.id: _Locked(r.id, r.organization_id, r.type, r.balance) for r in rows}


def _pair_wallets(locked: dict[UUID, _Locked], netting: Netting) -> PairWallets:
    def find(org: UUID, wallet_type: str) -> UUID:
        found = [
            w.id for w in locked.values() if w.organization_id == org and w.type == wallet_type
        ]
        if len(found) != 1:
            raise ClearingMismatch(
                f"expected one {wallet_type} wallet of {org}, found {len(found)}"
            )
        return found[0]

    payer, payee = netting.payer_organization_id, netting.payee_organization_id
    return PairWallets(
        payer_clearing=find(payer, "CLEARING"),
        payer_system=find(payer, "SYSTEM"),
        payee_clearing=find(payee, "CLEARING"),
        payee_system=find(payee, "SYSTEM"),
    )


def _check_clearing(locked: dict[UUID, _Locked], wallets: PairWallets, netting: Netting) -> None:
    """Both clearing wallets must hold exactly the netted transfers, or nothing is written."""
    for wallet_id, payer_side in ((wallets.payer_clearing, True), (wallets.payee_clearing, False)):
        expected = expected_clearing_balance(netting, payer_side=payer_side)
        actual = locked[wallet_id].balance
        if actual != expected:
            raise ClearingMismatch(
                f"clearing wallet {wallet_id} holds {actual}, its unsettled transfers {expected}"
            )


def _check_range(locked: dict[UUID, _Locked], wallets: PairWallets, netting: Netting) -> None:
    """The gross totals (bigint columns) and both SYSTEM balances after it must fit 64 bits."""
    payer_system = locked[wallets.payer_system].balance + netting.net_amount
    payee_system = locked[wallets.payee_system].balance - netting.net_amount
    values = (
        netting.gross_payer_to_payee,
        netting.gross_payee_to_payer,
        payer_system,
        payee_system,
    )
    if not all(fits_int64(v) for v in values):
        raise SettlementOutOfRange(
            f"{netting.transfer_count} transfers between {netting.payer_organization_id} and "
            f"{netting.payee_organization_id} would take a total past the ledger's 64-bit range"
        )


def _insert_settlement(conn: Connection, currency: str, netting: Netting) -> Settlement:
    row = conn.execute(
        settlements.insert()
        .values(
            id=uuid.uuid4(),
            payer_organization_id=netting.payer_organization_id,
            payee_organization_id=netting.payee_organization_id,
            currency=currency,
            gross_payer_to_payee=netting.gross_payer_to_payee,
            gross_payee_to_payer=netting.gross_payee_to_payer,
            net_amount=netting.net_amount,
            transfer_count=netting.transfer_count,
            window_start=netting.window_start,
            window_end=netting.window_end,
            status="COMPLETED",
        )
        .returning(*settlements.c)
    ).one()
    return settlement_of(row)


def settlement_of(row: Any) -> Settlement:
    m = row._mapping
    return Settlement(**{name: m[name] for name in Settlement.__dataclass_fields__})


def _post_entries(
    conn: Connection,
    settlement: Settlement,
    locked: dict[UUID, _Locked],
    legs: Sequence[tuple[UUID, str]],
) -> None:
    """Write the legs with running balances, after checking each organization's sum is zero."""
    if not legs:
        return
    amount = settlement.net_amount
    per_org: dict[UUID, int] = {}
    balances: list[int] = []
    for wallet_id, direction in legs:
        wallet = locked[wallet_id]
        signed = amount if direction == CREDIT else -amount
        per_org[wallet.organization_id] = per_org.get(wallet.organization_id, 0) + signed
        balances.append(wallet.balance + signed)
    if any(per_org.values()):
        raise AssertionError(f"settlement {settlement.id} would unbalance a book: {per_org}")
    conn.execute(
        INSERT_ENTRIES,
        {
            "settlement_id": settlement.id,
            "amount": amount,
            "currency": settlement.currency,
            "wallet_ids": [w for w, _ in legs],
            "organization_ids": [locked[w].organization_id for w, _ in legs],
            "directions": [d for _, d in legs],
            "balances": balances,
        },
    )
    for (wallet_id, _), balance in zip(legs, balances, strict=True):
        conn.execute(UPDATE_BALANCE, {"id": wallet_id, "balance": balance})
