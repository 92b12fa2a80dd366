"""Risk rules applied by the real posting path against PostgreSQL."""

from __future__ import annotations

import threading
from uuid import UUID

import pytest
from sqlalchemy import Engine, text

from tests.risk.support import add_rule, drain, fund, outcomes, submit
from tests.support.ledger import create_book


def _limited(outcome: tuple[str, str | None, str | None], rule_id: UUID) -> bool:
    status, code, message = outcome
    return status == "FAILED" and code == "limit_exceeded" and str(rule_id) in (message or "")


def test_max_amount_fails_only_transfers_above_it(engine: Engine) -> None:
    """A transfer above MAX_AMOUNT fails with the rule's id; one at the limit completes."""
    book = create_book(engine, 2)
    a, b = book.wallet_ids
    fund(engine, book, a, 10_000)
    rule = add_rule(engine, book, "MAX_AMOUNT", currency="USD", max_amount=500)
    ids = submit(engine, book, [(a, b, 501), (a, b, 500), (b, a, 100)])
    drain(engine)
    over, at_limit, back = outcomes(engine, ids)
    assert _limited(over, rule)
    assert at_limit == ("COMPLETED", None, None)
    assert back == ("COMPLETED", None, None)


def test_window_count_and_amount_limits(engine: Engine) -> None:
    """WINDOW_DEBITS counts a wallet's debits in the window, across batches and within one."""
    book = create_book(engine, 3)
    a, b, c = book.wallet_ids
    fund(engine, book, a, 10_000)
    fund(engine, book, b, 10_000)
    by_count = add_rule(
        engine, book, "WINDOW_DEBITS", wallet_id=a, max_count=3, window_seconds=3600
    )
    by_amount = add_rule(
        engine,
        book,
        "WINDOW_DEBITS",
        wallet_id=b,
        currency="USD",
        max_amount=250,
        window_seconds=60,
    )
    first = submit(engine, book, [(a, c, 10), (a, c, 10), (b, c, 100)])
    drain(engine)
    assert all(o[0] == "COMPLETED" for o in outcomes(engine, first))
    later = submit(
        engine, book, [(a, c, 10), (a, c, 10), (b, c, 100), (b, c, 100), (b, c, 50), (c, a, 5)]
    )
    drain(engine)
    third_a, fourth_a, second_b, third_b, fourth_b, credit = outcomes(engine, later)
    assert third_a[0] == "COMPLETED"
    assert _limited(fourth_a, by_count)
    assert second_b[0] == "COMPLETED"
    assert _limited(third_b, by_amount)
    assert fourth_b[0] == "COMPLETED", "a refused debit does not count against the window"
    assert credit[0] == "COMPLETED", "credits are not limited"


def test_rules_apply_per_wallet_type_and_currency(engine: Engine) -> None:
    """A rule scoped to BONUS wallets, or to another currency, leaves other debits alone."""
    book = create_book(engine, 2)
    a, b = book.wallet_ids
    with engine.begin() as conn:
        bonus = conn.execute(
            text(
                "INSERT INTO wallets (organization_id, type, currency) VALUES (:o, 'BONUS', 'USD')"
                " RETURNING id"
            ),
            {"o": book.organization_id},
        ).scalar_one()
    fund(engine, book, a, 1_000)
    fund(engine, book, bonus, 1_000)
    on_bonus = add_rule(
        engine, book, "MAX_AMOUNT", wallet_type="BONUS", currency="USD", max_amount=100
    )
    add_rule(engine, book, "MAX_AMOUNT", currency="EUR", max_amount=1)
    add_rule(engine, book, "MAX_AMOUNT", currency="USD", max_amount=1, is_active=False)
    ids = submit(engine, book, [(a, b, 300), (bonus, b, 300), (bonus, b, 100)])
    drain(engine)
    primary, bonus_over, bonus_ok = outcomes(engine, ids)
    assert primary[0] == "COMPLETED"
    assert _limited(bonus_over, on_bonus)
    assert bonus_ok[0] == "COMPLETED"


def test_blocked_wallet_neither_sends_nor_receives(engine: Engine) -> None:
    book = create_book(engine, 3)
    a, b, c = book.wallet_ids
    fund(engine, book, a, 1_000)
    fund(engine, book, b, 1_000)
    rule = add_rule(engine, book, "BLOCKED_WALLET", wallet_id=b)
    ids = submit(engine, book, [(a, b, 10), (b, c, 10), (a, c, 10)])
    drain(engine)
    to_blocked, from_blocked, other = outcomes(engine, ids)
    assert _limited(to_blocked, rule)
    assert _limited(from_blocked, rule)
    assert other[0] == "COMPLETED"


def test_atomic_batch_with_one_member_over_a_limit_fails_whole(engine: Engine) -> None:
    """The batch fails together, and its refused debits do not use up the window."""
    book = create_book(engine, 3)
    a, b, c = book.wallet_ids
    fund(engine, book, a, 10_000)
    rule = add_rule(engine, book, "WINDOW_DEBITS", wallet_id=a, max_count=2, window_seconds=3600)
    batch = submit(engine, book, [(a, b, 10), (a, c, 10), (a, b, 10)], atomic=True)
    drain(engine)
    first, second, third = outcomes(engine, batch)
    assert first[:2] == ("FAILED", "atomic_batch_failed")
    assert second[:2] == ("FAILED", "atomic_batch_failed")
    assert _limited(third, rule)
    after = submit(engine, book, [(a, b, 10), (a, c, 10)])
    drain(engine)
    assert [o[0] for o in outcomes(engine, after)] == ["COMPLETED", "COMPLETED"]
    with engine.connect() as conn:
        debits = conn.scalar(
            text(
                "SELECT count(*) FROM ledger_entries WHERE wallet_id = :w AND direction = 'DEBIT'"
            ),
            {"w": a},
        )
    assert debits == 2


@pytest.mark.parametrize("batch_size", [1, 7])
def test_concurrent_posting_never_exceeds_a_hot_wallets_window(
    engine: Engine, batch_size: int
) -> None:
    """Four workers posting at once on one hot wallet keep its window's sum and count."""
    book = create_book(engine, 5)
    hot, *others = book.wallet_ids
    fund(engine, book, hot, 1_000_000)
    max_count, max_amount = 40, 3_000
    add_rule(
        engine,
        book,
        "WINDOW_DEBITS",
        wallet_id=hot,
        currency="USD",
        max_count=max_count,
        max_amount=max_amount,
        window_seconds=3600,
    )
    moves = [(hot, others[n % len(others)], 20 + (n * 37) % 90) for n in range(150)]
    ids = submit(engine, book, moves)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            drain(engine, batch_size)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with engine.connect() as conn:
        count, total = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(amount), 0) FROM ledger_entries"
                " WHERE wallet_id = :w AND direction = 'DEBIT'"
            ),
            {"w": hot},
        ).one()
    results = outcomes(engine, ids)
    assert all(r[0] in {"COMPLETED", "FAILED"} for r in results)
    assert count == sum(1 for r in results if r[0] == "COMPLETED")
    assert count <= max_count and total <= max_amount, (count, total)
    assert any(r[1] == "limit_exceeded" for r in results), "the window was never reached"
    assert count == max_count or total > max_amount - 110, "transfers that fit were refused"
