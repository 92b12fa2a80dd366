"""The intake against real PostgreSQL: committing new intents wakes the posting dispatcher,
and the group committer stores each new transfer with its audit record.

The dispatcher learns of new work only from `NOTIFY vaultcraft_pending` (or its slow
probe), so a commit that stores a new intent must send it, and a pure replay must not.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import psycopg
import pytest
from sqlalchemy import Engine, NullPool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger_core.acting import Acting, AuditContext
from ledger_core.channels import PENDING_CHANNEL
from ledger_core.errors import IdempotencyKeyReused
from ledger_core.intents import Stored, TransferIntent
from ledger_core.persistence.transfers import group_intake
from ledger_core.persistence.transfers.group_intake import CompanionOf, GroupCommitter, Request
from ledger_core.persistence.transfers.intake import (
    Companion,
    Item,
    KnownWallets,
    route_all,
    store_intents,
)
from ledger_core.services.transfers import submit_batch, submitted_records, transfer_committer
from runtime.settings import to_psycopg_url
from tests.settlement.ledger import CrossLedger, Org


def _store(url: str, org: Org, intent: TransferIntent) -> bool:
    """Store one intent through the gateway's intake; True if it was new."""

    async def store() -> bool:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                routes = await route_all(conn, org.admin, [intent])
                stored = await store_intents(conn, org.admin, [intent], routes)
        finally:
            await engine.dispose()
        return not stored[0].replayed

    return asyncio.run(store())


def _heard(listener: psycopg.Connection[tuple[object, ...]]) -> int:
    return sum(1 for _ in listener.notifies(timeout=0.5, stop_after=1))


def test_a_new_intent_wakes_the_dispatcher_and_a_replay_does_not(
    engine: Engine, database_url: str
) -> None:
    with CrossLedger(engine, database_url) as ledger:
        org = ledger.org(funded=1_000)
        intent = TransferIntent(
            idempotency_key=str(uuid.uuid4()),
            source_wallet_id=org.wallet,
            destination_wallet_id=org.system,
            amount=10,
            currency="USD",
        )
        with psycopg.connect(to_psycopg_url(database_url), autocommit=True) as listener:
            listener.execute(f"LISTEN {PENDING_CHANNEL}")
            assert _store(database_url, org, intent) is True
            assert _heard(listener) == 1
            assert _store(database_url, org, intent) is False  # the same key and request
            assert _heard(listener) == 0
        ledger.post_all()  # leave nothing PENDING for the tests that share this database


@contextlib.asynccontextmanager
async def _started(
    url: str, committer_on: Callable[[AsyncEngine], GroupCommitter] = transfer_committer
) -> AsyncIterator[tuple[AsyncEngine, GroupCommitter]]:
    """An engine on `url` and a started committer on it; both closed on the way out."""
    engine = create_async_engine(url, poolclass=NullPool)
    committer = committer_on(engine)
    await committer.start()
    try:
        yield engine, committer
    finally:
        await committer.stop()
        await engine.dispose()


def _group(
    url: str, org: Org, intents: list[TransferIntent], companion: CompanionOf = submitted_records
) -> list[Stored | BaseException]:
    """Submit the intents together to the gateway's group committer, with one writer (so
    one group)."""

    def committer_on(engine: AsyncEngine) -> GroupCommitter:
        return GroupCommitter(engine, writers=1, companion=companion)

    async def submit_all() -> list[Stored | BaseException]:
        async with _started(url, committer_on) as (_, committer):
            submitted = [
                committer.submit(
                    org.admin,
                    intent,
                    AuditContext("203.0.113.7", "ua", f"req-{n}", org.admin.user_id, org.id),
                )
                for n, intent in enumerate(intents)
            ]
            return await asyncio.gather(*submitted, return_exceptions=True)

    return asyncio.run(submit_all())


def test_each_new_transfer_of_a_group_is_stored_with_its_audit_record(
    engine: Engine, database_url: str
) -> None:
    with CrossLedger(engine, database_url) as ledger:
        org = ledger.org(funded=1_000)

        def intent(key: str, amount: int) -> TransferIntent:
            return TransferIntent(key, org.wallet, org.system, amount, "USD")

        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        outcomes = _group(
            database_url,
            org,
            [intent(first, 10), intent(second, 20), intent(first, 10), intent(first, 99)],
        )
        new_first, new_second, replay, refused = outcomes
        assert isinstance(new_first, Stored) and not new_first.replayed
        assert isinstance(new_second, Stored) and not new_second.replayed
        assert isinstance(replay, Stored) and replay.replayed
        assert replay.row["id"] == new_first.row["id"]
        assert isinstance(refused, IdempotencyKeyReused)
        (again,) = _group(database_url, org, [intent(second, 20)])
        assert isinstance(again, Stored) and again.replayed

        with engine.connect() as conn:
            records = conn.execute(
                text(
                    "SELECT resource_id, request_id, client_address, actor_id, details"
                    " FROM audit_logs WHERE organization_id = :org"
                    " AND action = 'transfer.submitted' ORDER BY id"
                ),
                {"org": org.id},
            ).all()
        assert [(r.resource_id, r.request_id) for r in records] == [
            (str(new_first.row["id"]), "req-0"),
            (str(new_second.row["id"]), "req-1"),
        ]
        assert {(r.client_address, r.actor_id) for r in records} == {
            ("203.0.113.7", org.admin.user_id)
        }
        assert records[1].details == {
            "kind": "TRANSFER",
            "amount": "0.20",
            "currency": "USD",
            "source_wallet_id": str(org.wallet),
            "destination_wallet_id": str(org.system),
            "idempotency_key": second,
        }
        ledger.post_all()


def test_the_intake_announces_each_new_transfer_and_its_submitter_before_storing_it(
    engine: Engine, database_url: str
) -> None:
    """What lets a submitter's long poll skip its first read (`FinalWaiter.expect`): the
    announcement comes before the statement, so before the transfer can become final."""
    announced: list[tuple[uuid.UUID, tuple[uuid.UUID, uuid.UUID]]] = []
    stored_when_announced: list[int] = []

    def expect(transfers: Iterable[tuple[uuid.UUID, tuple[uuid.UUID, uuid.UUID]]]) -> None:
        batch = list(transfers)
        announced.extend(batch)
        with psycopg.connect(to_psycopg_url(database_url)) as conn:
            (found,) = conn.execute(
                "SELECT count(*) FROM transactions WHERE id = ANY(%s)", ([t for t, _ in batch],)
            ).fetchone() or (None,)
        stored_when_announced.append(found)

    with CrossLedger(engine, database_url) as ledger:
        org = ledger.org(funded=1_000)
        intents = [
            TransferIntent(str(uuid.uuid4()), org.wallet, org.system, 10 + n, "USD")
            for n in range(3)
        ]

        async def submit_all() -> list[Stored]:
            def committer_on(engine: AsyncEngine) -> GroupCommitter:
                return transfer_committer(engine, expect)

            async with _started(database_url, committer_on) as (_, committer):
                return list(
                    await asyncio.gather(*(committer.submit(org.admin, i) for i in intents))
                )

        stored = asyncio.run(submit_all())
        assert stored_when_announced and set(stored_when_announced) == {0}
        caller = (org.id, org.admin.user_id)
        assert {s.row["id"] for s in stored} <= {t for t, _ in announced}
        assert {c for _, c in announced} == {caller}
        ledger.post_all()


def test_known_wallets_reads_each_wallet_once_and_never_remembers_a_missing_one(
    engine: Engine, database_url: str
) -> None:
    with CrossLedger(engine, database_url) as ledger:
        org = ledger.org(funded=1_000)
        not_yet = uuid.uuid4()

        async def scenario() -> None:
            known = KnownWallets(size=4)
            async_engine = create_async_engine(database_url, poolclass=NullPool)
            try:
                async with async_engine.connect() as conn:
                    first = await known.load(conn, [org.wallet, org.system, not_yet])
                    assert set(first) == {org.wallet, org.system}
                    assert first[org.wallet].organization_id == org.id
                    assert first[org.system].type == "SYSTEM"
                closed = await async_engine.connect()
                await closed.close()  # a read on it would fail: known wallets need none
                again = await known.load(closed, [org.wallet, org.system])
                assert again == {w: first[w] for w in (org.wallet, org.system)}
                async with async_engine.begin() as conn:
                    await conn.execute(
                        text(
                            "INSERT INTO wallets (id, organization_id, type, currency, name)"
                            " VALUES (:id, :org, 'BONUS', 'USD', 'created since')"
                        ),
                        {"id": not_yet, "org": org.id},
                    )
                async with async_engine.connect() as conn:
                    assert (await known.load(conn, [not_yet]))[not_yet].currency == "USD"
                    others = [uuid.uuid4() for _ in range(5)]
                    await conn.execute(
                        text(
                            "INSERT INTO wallets (id, organization_id, type, currency, name)"
                            " SELECT id, :org, 'BONUS', 'USD', 'more' FROM unnest(CAST(:ids AS uuid[])) id"
                        ),
                        {"ids": others, "org": org.id},
                    )
                    await conn.commit()
                    assert set(await known.load(conn, others)) == set(others)
                    assert len(known) <= 4  # the older half is forgotten past its size
            finally:
                await async_engine.dispose()

        asyncio.run(scenario())
        ledger.post_all()


def _failing(group: Sequence[tuple[Request, Item]]) -> Companion:
    """A companion whose write fails once the intents are in: an audit record without an
    action for every row stored (a companion runs only if it writes)."""
    return Companion("INSERT INTO audit_logs (action) SELECT NULL FROM inserted", {})


def test_a_group_whose_statement_fails_stores_none_of_it(engine: Engine, database_url: str) -> None:
    """The group commits in autocommit, its intents in one statement: a failure after the
    rows went in leaves none of them, no audit record, and answers every request."""
    with CrossLedger(engine, database_url) as ledger:
        org = ledger.org(funded=1_000)
        keys = [str(uuid.uuid4()) for _ in range(3)]
        intents = [TransferIntent(key, org.wallet, org.system, 10, "USD") for key in keys]
        outcomes = _group(database_url, org, intents, companion=_failing)
        assert all(isinstance(o, DBAPIError) for o in outcomes), outcomes
        with engine.connect() as conn:
            stored = conn.scalar(
                text(
                    "SELECT count(*) FROM transactions"
                    " WHERE organization_id = :org AND idempotency_key = ANY(:keys)"
                ),
                {"org": org.id, "keys": keys},
            )
            audited = conn.scalar(
                text(
                    "SELECT count(*) FROM audit_logs"
                    " WHERE organization_id = :org AND action = 'transfer.submitted'"
                ),
                {"org": org.id},
            )
        assert (stored, audited) == (0, 0)
        retried = _group(database_url, org, intents)
        assert all(isinstance(o, Stored) and not o.replayed for o in retried), retried
        ledger.post_all()


async def _until_an_insert_waits_on_a_lock(engine: AsyncEngine, timeout_s: float = 10) -> None:
    """Until a backend of this database waits for a lock while inserting transfers."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO transactions%'"
    )
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        async with engine.connect() as conn:
            if (await conn.execute(waiting)).scalar_one():
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the batch never waited on the blocker's row")


def test_a_batch_in_flight_holds_up_only_requests_for_its_own_keys(
    engine: Engine, database_url: str
) -> None:
    """A single transfer under a key a batch is storing waits for the batch on its own: in
    the group it would wait on the batch's uncommitted row, and with it every request of
    the group, another tenant's included.

    The batch is held mid-flight by a transaction that stores the same key first and does
    not commit until the other tenant's transfer has been answered."""
    with CrossLedger(engine, database_url) as ledger:
        a, b = ledger.org(funded=1_000), ledger.org(funded=1_000)
        key = str(uuid.uuid4())
        shared = TransferIntent(key, a.wallet, a.system, 10, "USD")
        other = TransferIntent(str(uuid.uuid4()), b.wallet, b.system, 10, "USD")

        async def scenario() -> tuple[bool, Stored, list[Stored], Stored]:
            async with _started(database_url) as (url_engine, committer):
                blocker = await url_engine.connect()
                try:
                    await blocker.begin()
                    routes = await route_all(blocker, a.admin, [shared])
                    await store_intents(blocker, a.admin, [shared], routes)
                    batch = asyncio.create_task(
                        submit_batch(
                            url_engine, committer, Acting(a.admin, AuditContext()), [shared],
                            atomic=False,
                        )
                    )  # fmt: skip
                    # the batch, on the blocker's row
                    await _until_an_insert_waits_on_a_lock(url_engine)
                    single = asyncio.create_task(committer.submit(a.admin, shared))
                    await asyncio.sleep(0.1)
                    answered = await asyncio.wait_for(committer.submit(b.admin, other), 5)
                    single_waited = not single.done()
                    await blocker.rollback()
                    return single_waited, answered, await batch, await single
                finally:
                    await blocker.close()

        single_waited, answered, batch, single = asyncio.run(scenario())
        assert not answered.replayed
        assert single_waited
        assert [s.replayed for s in batch] == [False]
        assert single.replayed and single.row["id"] == batch[0].row["id"]
        ledger.post_all()


def test_a_transaction_elsewhere_holds_up_a_group_for_its_lock_wait_at_most(
    engine: Engine, database_url: str
) -> None:
    """What another gateway stores is unknown here: a group whose statement meets a row
    that another transaction is storing waits `LOCK_WAIT_MS`, then its requests are stored
    one by one, so only the request under that key waits for the transaction to end.

    The other gateway is a transaction that stores tenant A's key and holds; tenant A's
    single transfer under that key and tenant B's transfer go to this gateway together."""
    with CrossLedger(engine, database_url) as ledger:
        a, b = ledger.org(funded=1_000), ledger.org(funded=1_000)
        shared = TransferIntent(str(uuid.uuid4()), a.wallet, a.system, 10, "USD")
        other = TransferIntent(str(uuid.uuid4()), b.wallet, b.system, 10, "USD")

        async def scenario() -> tuple[float, bool, Stored, Stored, Stored]:
            async with _started(database_url) as (url_engine, committer):
                elsewhere = await url_engine.connect()
                try:
                    await elsewhere.begin()
                    routes = await route_all(elsewhere, a.admin, [shared])
                    (stored_elsewhere,) = await store_intents(elsewhere, a.admin, [shared], routes)
                    started = asyncio.get_running_loop().time()
                    single = asyncio.create_task(committer.submit(a.admin, shared))
                    answered = await asyncio.wait_for(committer.submit(b.admin, other), 5)
                    took = asyncio.get_running_loop().time() - started
                    await asyncio.sleep(0.3)
                    single_waited = not single.done()
                    await elsewhere.commit()
                    return took, single_waited, answered, stored_elsewhere, await single
                finally:
                    await elsewhere.close()

        took, single_waited, answered, stored_elsewhere, single = asyncio.run(scenario())
        assert not answered.replayed
        assert took < 2
        assert single_waited
        assert single.replayed and single.row["id"] == stored_elsewhere.row["id"]
        ledger.post_all()


def _groups_of(
    url: str, org: Org, pace: Sequence[float], gather_ms: int
) -> tuple[list[int], list[float]]:
    """Submit one transfer, then one after each pause of `pace` (not waiting for answers
    but the first), to a committer gathering for `gather_ms`; returns the size of every
    group it stored and how long each request took to be answered."""
    groups: list[int] = []

    def committer_on(engine: AsyncEngine) -> GroupCommitter:
        return GroupCommitter(
            engine,
            writers=1,
            announce=lambda items: groups.append(len(items)),
            gather_ms=gather_ms,
        )

    def intent() -> TransferIntent:
        return TransferIntent(str(uuid.uuid4()), org.wallet, org.system, 10, "USD")

    async def timed(committer: GroupCommitter) -> float:
        started = time.monotonic()
        await committer.submit(org.admin, intent())
        return time.monotonic() - started

    async def submit_all() -> list[float]:
        async with _started(url, committer_on) as (_, committer):
            took = [await timed(committer)]
            waiting = []
            for pause in pace:
                await asyncio.sleep(pause)
                waiting.append(asyncio.create_task(timed(committer)))
            return took + list(await asyncio.gather(*waiting))

    took = asyncio.run(submit_all())
    return groups, took


def test_while_requests_keep_coming_a_small_group_waits_for_more(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests arriving while the previous group is recent are gathered for the gathering
    time: two requests 50 ms apart, right after a commit, share one group; with no
    gathering they do not."""
    monkeypatch.setattr(group_intake, "STREAM_GAP_S", 10.0)
    with CrossLedger(engine, database_url) as ledger:
        org = ledger.org(funded=1_000)
        groups, _ = _groups_of(database_url, org, [0, 0.05], gather_ms=500)
        assert groups == [1, 2]
        groups, _ = _groups_of(database_url, org, [0, 0.05], gather_ms=0)
        assert groups == [1, 1, 1]
        ledger.post_all()


def test_a_lone_request_and_a_large_group_are_stored_at_once(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_intake, "STREAM_GAP_S", 0.2)
    with CrossLedger(engine, database_url) as ledger:
        org = ledger.org(funded=1_000)
        groups, took = _groups_of(database_url, org, [0.5], gather_ms=3000)
        assert groups == [1, 1]
        assert max(took) < 2, "a request after a quiet spell must not wait to be gathered"

        monkeypatch.setattr(group_intake, "SMALL_GROUP", 1)
        monkeypatch.setattr(group_intake, "STREAM_GAP_S", 10.0)
        groups, took = _groups_of(database_url, org, [0], gather_ms=3000)
        assert groups == [1, 1]
        assert max(took) < 2, "a group already large must not wait for more"
        ledger.post_all()
