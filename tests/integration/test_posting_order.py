"""Transfers that share a wallet post in the order they were accepted, whichever batch
claimed them: against a real PostgreSQL, in a database of the test's own.

Another batch is played by a second connection that has claimed the oldest transfers and
not yet locked their wallets: the moment between a claim and its wallet locks, where two
posting slots used to let the newer transfer through first.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import Engine, text

from ledger_core.persistence.transfers import posting
from ledger_core.persistence.transfers.batch_locks import CLAIM_TURN_CLASS
from ledger_core.persistence.transfers.claim import claim_batch
from ledger_core.persistence.transfers.posting import post_batch, post_claimed
from tests.support.databases import fresh_engine
from tests.support.ledger import Book, create_book, insert_intents
from tests.support.ledger_checks import final_states


@pytest.fixture
def scratch(service_urls: tuple[str, str]) -> Iterator[Engine]:
    with fresh_engine(service_urls[0], "vaultcraft_order", pool_size=3) as engine:
        yield engine


def _funded(engine: Engine, wallets: int, amounts: dict[int, int]) -> Book:
    """A book whose wallets (by position) hold `amounts`, posted."""
    book = create_book(engine, wallets)
    with engine.begin() as conn:
        insert_intents(
            conn, book, [(book.system_wallet_id, book.wallet_ids[i], a) for i, a in amounts.items()]
        )
    with engine.begin() as conn:
        assert post_batch(conn, 100).completed == len(amounts)
    return book


def _drain(engine: Engine) -> None:
    while True:
        with engine.begin() as conn:
            result = post_batch(conn, 1000)
        if result.claimed == 0 and not result.more:
            return


def test_a_newer_transfer_waits_for_an_older_one_another_batch_claimed(scratch: Engine) -> None:
    # Given a wallet holding 100.00, and 80.00 then 30.00 sent from it
    book = _funded(scratch, 2, {0: 100_00})
    a, b = book.wallet_ids
    with scratch.begin() as conn:
        older, newer = insert_intents(conn, book, [(a, b, 80_00), (a, b, 30_00)])

    with scratch.connect() as first, first.begin():
        # When one batch has claimed the older transfer, its wallets not yet locked
        claimed = claim_batch(first, 1)
        assert [t.id for t in claimed.transfers] == [older]

        # Then a second batch claims the newer one and lets it go untouched
        with scratch.begin() as second:
            result = post_batch(second, 1000)
        assert (result.claimed, result.more) == (0, True)
        with scratch.connect() as conn:
            assert final_states(conn, [older, newer]) == [("PENDING", None), ("PENDING", None)]

        # And the first batch posts the older transfer
        outcomes = post_claimed(first, claimed, None, datetime.now(UTC))
        assert [o.status for o in outcomes] == ["COMPLETED"]

    _drain(scratch)
    with scratch.connect() as conn:
        assert final_states(conn, [older, newer]) == [
            ("COMPLETED", None),
            ("FAILED", "insufficient_funds"),
        ]


UNLOCKED = text("SELECT id FROM transactions WHERE id = ANY(:ids) FOR NO KEY UPDATE SKIP LOCKED")


def test_a_transfer_that_waits_keeps_its_wallets_from_the_later_ones(scratch: Engine) -> None:
    # Given six wallets, and a transfer a -> b claimed by another batch
    book = _funded(scratch, 6, {0: 10_00, 1: 10_00, 2: 10_00, 4: 10_00})
    a, b, c, d, e, f = book.wallet_ids
    with scratch.begin() as conn:
        (held,) = insert_intents(conn, book, [(a, b, 1_00)])
        after = insert_intents(conn, book, [(b, c, 1_00), (c, d, 1_00), (e, f, 1_00)])

    with scratch.connect() as first, first.begin():
        assert [t.id for t in claim_batch(first, 1).transfers] == [held]

        # When a second batch claims the three later transfers
        with scratch.begin() as second:
            result = post_batch(second, 1000)
            # (those it lets go are free at once for the next claim, before it commits)
            with scratch.begin() as third:
                free = third.execute(UNLOCKED, {"ids": after}).scalars().all()
            assert set(free) == set(after[:2])

        # Then b -> c waits on b, c -> d waits behind it on c, and e -> f posts
        assert (result.claimed, result.more) == (1, True)
        assert [o.transfer.id for o in result.outcomes] == [after[2]]
        with scratch.connect() as conn:
            assert final_states(conn, after) == [
                ("PENDING", None),
                ("PENDING", None),
                ("COMPLETED", None),
            ]

    _drain(scratch)
    with scratch.connect() as conn:
        assert final_states(conn, [held, *after]) == [("COMPLETED", None)] * 4
        chain = (
            conn.execute(
                text(
                    "SELECT t.seq FROM ledger_entries AS e JOIN transactions AS t"
                    " ON t.id = e.transaction_id WHERE e.wallet_id = :c ORDER BY e.id"
                ),
                {"c": c},
            )
            .scalars()
            .all()
        )
    assert chain == sorted(chain)  # c's entries in acceptance order


def test_two_maximal_deposits_post_in_order_across_batches(scratch: Engine) -> None:
    """The first of two deposits of 2**63 - 1 minor units from SYSTEM posts, the second
    fails out of range, even when a second batch claims the second one first."""
    book = create_book(scratch, 2)
    largest = 2**63 - 1
    with scratch.begin() as conn:
        first_id, second_id = insert_intents(
            conn, book, [(book.system_wallet_id, w, largest) for w in book.wallet_ids]
        )
    with scratch.connect() as first, first.begin():
        claimed = claim_batch(first, 1)
        with scratch.begin() as second:
            assert post_batch(second, 1000).claimed == 0
        post_claimed(first, claimed, None, datetime.now(UTC))
    _drain(scratch)
    with scratch.connect() as conn:
        assert final_states(conn, [first_id, second_id]) == [
            ("COMPLETED", None),
            ("FAILED", "amount_out_of_range"),
        ]


TURN_HOLDERS = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :c AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
"""Holders of the claim turn in this test's database (`pg_locks` shows every database's)."""


def test_the_claim_turn_ends_before_the_batch_commits(scratch: Engine) -> None:
    book = _funded(scratch, 1, {0: 5_00})
    with scratch.begin() as conn:
        insert_intents(conn, book, [(book.wallet_ids[0], book.system_wallet_id, 1_00)])
    with scratch.connect() as conn, conn.begin():
        assert post_batch(conn, 10).completed == 1
        with scratch.connect() as other:  # the batch is still open, its turn is over
            assert other.execute(TURN_HOLDERS, {"c": CLAIM_TURN_CLASS}).scalar_one() == 0


def test_a_failure_during_the_claim_turn_closes_its_connection(
    scratch: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn is a session lock: a batch that fails while holding it must not hand its
    connection back to the pool with the lock, or every later claim would wait forever."""
    book = _funded(scratch, 1, {0: 5_00})
    with scratch.begin() as conn:
        insert_intents(conn, book, [(book.wallet_ids[0], book.system_wallet_id, 1_00)])

    def broken_claim(*args: object) -> None:
        raise RuntimeError("the claim broke")

    monkeypatch.setattr(posting, "claim_batch", broken_claim)
    with pytest.raises(RuntimeError, match="the claim broke"), scratch.begin() as conn:
        post_batch(conn, 10)
    monkeypatch.undo()

    with scratch.connect() as other:
        assert other.execute(TURN_HOLDERS, {"c": CLAIM_TURN_CLASS}).scalar_one() == 0
    with scratch.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '5s'"))
        assert post_batch(conn, 10).completed == 1


def _held(engine: Engine, book: Book, source: int, destination: int, amount: int) -> UUID:
    """A hold of `amount` between two of the book's wallets, posted: HELD."""
    with engine.begin() as conn:
        (hold,) = insert_intents(
            conn, book, [(book.wallet_ids[source], book.wallet_ids[destination], amount)]
        )
        conn.execute(
            text(
                "UPDATE transactions SET hold_amount = amount,"
                " hold_expires_at = now() + interval '1 hour' WHERE id = :id"
            ),
            {"id": hold},
        )
    with engine.begin() as conn:
        assert post_batch(conn, 10).claimed == 1
    with engine.connect() as conn:
        assert final_states(conn, [hold]) == [("HELD", None)]
    return hold


def test_a_partly_blocked_batch_deciding_a_capture_keeps_its_claim_whole(scratch: Engine) -> None:
    """Such a batch keeps the transfers it lets go locked until it commits, rather than
    dropping the capture it decides along with them."""
    book = _funded(scratch, 4, {0: 10_00, 2: 10_00})
    c, d = book.wallet_ids[2:]
    hold = _held(scratch, book, 0, 1, 3_00)
    with scratch.begin() as conn:
        (older,) = insert_intents(conn, book, [(c, d, 1_00)])
        (waits,) = insert_intents(conn, book, [(d, c, 50)])
        conn.execute(
            text(
                "INSERT INTO hold_actions (organization_id, transaction_id, action,"
                " idempotency_key, request_hash) VALUES (:o, :t, 'CAPTURE', 'capture-1', :h)"
            ),
            {"o": book.organization_id, "t": hold, "h": "0" * 64},
        )

    with scratch.connect() as first, first.begin():
        assert [t.id for t in claim_batch(first, 1).transfers] == [older]

        # When a second batch claims the newer transfer, which waits on c and d, and the capture
        with scratch.begin() as second:
            result = post_batch(second, 1000)
            # (the transfer it lets go stays locked until it commits)
            with scratch.begin() as third:
                assert third.execute(UNLOCKED, {"ids": [waits]}).scalars().all() == []

        # Then it decides the capture and posts no transfer
        assert [(o.status, o.action.transaction_id) for o in result.actions] == [
            ("COMPLETED", hold)
        ]
        assert (result.claimed, result.outcomes, result.more) == (1, [], True)

    _drain(scratch)
    with scratch.connect() as conn:
        assert final_states(conn, [hold, older, waits]) == [("COMPLETED", None)] * 3
