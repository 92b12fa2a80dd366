"""Settlement never overflows: a pair whose totals leave 64 bits is skipped alone."""

from __future__ import annotations

from sqlalchemy import Engine

from ledger_core.persistence.settlement.settle import (
    SettlementOutOfRange,
    SkippedPair,
    run_settlement,
)
from tests.settlement.books_sql import clearing_balance
from tests.settlement.ledger import CrossLedger, linked_pair

HUGE = 47 * 10**17
"""Above 2**62: two of these one way already pass the signed 64-bit range."""


def test_a_pair_with_gross_totals_past_64_bits_is_skipped_and_the_run_goes_on(
    ledger: CrossLedger, db: Engine
) -> None:
    """Gross flows of 2 x 4.7e18 each way net to zero but cannot be recorded: that pair waits,
    another pair in the same run settles."""
    big_a, big_b = ledger.org(funded=HUGE), ledger.org()
    ledger.accept(big_b, big_a)
    ledger.accept(big_a, big_b)
    for _ in range(2):
        ledger.pay(big_a, big_b, HUGE)
        ledger.pay(big_b, big_a, HUGE)
    a, b = linked_pair(ledger)
    ledger.pay(a, b, 30_00)

    skipped: list[SkippedPair] = []
    with db.connect() as conn:
        written = run_settlement(conn, skipped=skipped)

    assert [(s.payer_organization_id, s.net_amount) for s in written] == [(a.id, 30_00)]
    assert [type(p) for p in skipped] == [SettlementOutOfRange]
    assert skipped[0].reason == "amount_out_of_range"
    assert clearing_balance(db, a.id, b.id) == 0
    assert clearing_balance(db, big_a.id, big_b.id) == 0  # netted to zero, still unsettled
