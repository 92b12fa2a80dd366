"""Which claimed transfers may post while some of their wallets may not be touched."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from ledger_core.persistence.transfers.batch_locks import in_order_ready
from ledger_core.posting import PendingTransfer

ORG = uuid4()
W = {name: uuid4() for name in "abcdefgh"}


def transfer(seq: int, source: str, destination: str, group: UUID | None = None) -> PendingTransfer:
    return PendingTransfer(
        uuid4(),
        seq,
        ORG,
        ORG,
        "TRANSFER",
        W[source],
        W[destination],
        1,
        "USD",
        datetime.now(UTC),
        atomic_group_id=group,
    )


def seqs(transfers: list[PendingTransfer]) -> list[int]:
    return [t.seq for t in transfers]


def test_nothing_busy_everything_posts() -> None:
    batch = [transfer(1, "a", "b"), transfer(2, "b", "c")]
    ready, busy = in_order_ready(batch, set())
    assert seqs(ready) == [1, 2] and busy == set()


def test_a_waiting_transfer_keeps_its_wallets_from_later_ones_only() -> None:
    batch = [
        transfer(1, "c", "d"),
        transfer(2, "a", "c"),
        transfer(3, "c", "e"),
        transfer(4, "f", "g"),
    ]
    ready, busy = in_order_ready(batch, {W["a"]})
    assert seqs(ready) == [1, 4]
    assert busy == {W["a"], W["c"], W["e"]}


def test_an_atomic_batch_waits_whole_and_its_earlier_members_hold_their_wallets() -> None:
    group = uuid4()
    batch = [
        transfer(1, "b", "c", group),
        transfer(2, "c", "d"),  # after a member that must wait: waits too
        transfer(3, "a", "e", group),  # waits on a: the whole atomic batch waits
        transfer(4, "f", "g"),
    ]
    ready, busy = in_order_ready(batch, {W["a"]})
    assert seqs(ready) == [4]
    assert busy == {W[x] for x in "abcde"}


def test_an_atomic_batch_behind_a_waiting_one_waits_whole_too() -> None:
    first, second = uuid4(), uuid4()
    batch = [
        transfer(1, "g", "h", second),
        transfer(2, "c", "d", first),
        transfer(3, "d", "g"),
        transfer(4, "a", "b", first),
        transfer(5, "d", "f", second),  # behind the first atomic batch's c -> d
    ]
    ready, busy = in_order_ready(batch, {W["a"]})
    assert ready == []
    assert busy == {W[x] for x in "abcdfgh"}
