"""The outbox relay: ordered publication, wake-ups, idempotent deliveries, crashes, rivals."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.events.outbox import (
    WALLET_STATUS_CHANGED,
    event_envelope,
    outbox_insert,
)
from ledger_core.persistence.events.outbox_relay import (
    claim_events,
    finish_events,
    read_horizon,
)
from runtime.ports import free_port_block
from runtime.settings import Settings, to_psycopg_url
from tests.events.conftest import (
    Env,
    Process,
    RelayThread,
    insert_events,
    stream_ids,
    unrelayed,
)
from tests.support.ledger import Book, create_book
from workers.event_stream import EVENT_STREAM
from workers.outbox_relay import OutboxRelay


def add_webhook(engine: Engine, book: Book, events: list[str], *, deleted: bool = False) -> UUID:
    with engine.begin() as conn:
        found: UUID = conn.execute(
            text(
                "INSERT INTO webhooks (organization_id, url, events, secret, is_active, deleted_at)"
                " VALUES (:o, 'http://127.0.0.1:9/none', CAST(:e AS jsonb), 'whsec_x', :a,"
                " CASE WHEN :d THEN now() END) RETURNING id"
            ),
            {"o": book.organization_id, "e": json.dumps(events), "a": not deleted, "d": deleted},
        ).scalar_one()
    return found


@pytest.mark.usefixtures("settled_outbox")
def test_events_are_published_in_order_with_their_public_json(
    engine: Engine, stream: redis.Redis, make_relay: type[OutboxRelay]
) -> None:
    book = create_book(engine, 1)
    ids = insert_events(engine, book, 30)
    stream.xgroup_create(EVENT_STREAM, "test-readers", id="$", mkstream=True)

    make_relay().drain()

    assert unrelayed(engine, ids) == 0
    assert stream_ids(stream, set(ids)) == ids
    # A consumer group reads them, as the README shows.
    read = stream.xreadgroup("test-readers", "reader-1", {EVENT_STREAM: ">"}, count=10_000)
    entries = [fields for _name, batch in read for _entry, fields in batch]
    events = [json.loads(f[b"event"]) for f in entries if UUID(f[b"event_id"].decode()) in ids]
    assert [e["id"] for e in events] == [str(i) for i in ids]
    first = events[0]
    assert set(first) == {"id", "type", "created_at", "organization_id", "data"}
    assert first["type"] == "wallet.status_changed"
    assert first["organization_id"] == str(book.organization_id)
    assert first["data"]["n"] == 0 and first["created_at"].endswith("Z")


STREAM_DATA = {
    "id": "w-1",
    "amount": "1234.50",
    "note": 'quote " backslash \\ tab \t snowman \u2603 emoji \U0001f600',
    "count": 7,
    "ratio": 0.25,
    "big": 2**62,
    "flag": True,
    "none": None,
    "list": [1, "two", {"three": [3.5, False]}],
    "nested": {"b": {}, "a": []},
}


@pytest.mark.usefixtures("settled_outbox")
def test_a_stream_entry_holds_the_public_event_json_and_its_filter_fields(
    engine: Engine, stream: redis.Redis, make_relay: type[OutboxRelay]
) -> None:
    """The entry's shape, and its `event` the same JSON as the API renders from the row."""
    book = create_book(engine, 0)
    event_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            outbox_insert(
                WALLET_STATUS_CHANGED, book.organization_id, STREAM_DATA, event_id=event_id
            )
        )
        row = conn.execute(
            text(
                "SELECT id, type, created_at, organization_id, data FROM outbox WHERE event_id = :e"
            ),
            {"e": event_id},
        ).one()

    make_relay().drain()

    entries = [
        f for _id, f in stream.xrange(EVENT_STREAM) if f[b"event_id"] == str(event_id).encode()
    ]
    assert len(entries) == 1
    fields = {k.decode(): v.decode() for k, v in entries[0].items()}
    assert set(fields) == {"event", "event_id", "type", "organization_id", "outbox_id"}
    assert fields["type"] == WALLET_STATUS_CHANGED
    assert fields["organization_id"] == str(book.organization_id)
    assert fields["outbox_id"] == str(row.id)
    expected = event_envelope(event_id, row.type, row.created_at, row.organization_id, row.data)
    assert json.loads(fields["event"]) == expected
    assert expected["data"] == STREAM_DATA
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", expected["created_at"])


def test_the_outbox_trigger_notifies_at_commit(engine: Engine, database_url: str) -> None:
    book = create_book(engine, 0)
    dsn = to_psycopg_url(database_url)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN vaultcraft_outbox")
        with engine.begin() as conn:
            conn.execute(outbox_insert(WALLET_STATUS_CHANGED, book.organization_id, {"n": 1}))
            assert list(listener.notifies(timeout=0.2)) == []  # not before the commit
        heard = list(listener.notifies(timeout=2, stop_after=1))
    assert [n.channel for n in heard] == ["vaultcraft_outbox"]


def test_a_running_relay_wakes_on_commit_not_on_its_poll(
    engine: Engine, relay: RelayThread
) -> None:
    book = create_book(engine, 0)
    insert_events(engine, book, 1)
    time.sleep(1.5)  # the relay is now idle, waiting for a notification
    for _ in range(3):
        ids = insert_events(engine, book, 1)
        started = time.monotonic()
        while unrelayed(engine, ids):
            assert time.monotonic() - started < 5
            time.sleep(0.005)
        assert time.monotonic() - started < 0.5  # the idle poll is 1 s


def test_under_a_stream_of_commits_the_relay_takes_one_round_per_interval(
    engine: Engine,
    events_env: Env,
    no_deliveries_left_behind: None,
    stream: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each commit NOTIFYs; a relay that rests `VAULTCRAFT_OUTBOX_REST_MS` after a round
    reads the notifications of the commits meanwhile together, and relays them all in one
    round."""
    rounds: list[float] = []
    drain = OutboxRelay.drain

    def counted(self: OutboxRelay) -> None:
        rounds.append(time.monotonic())
        drain(self)

    resting = Settings.from_env({**events_env, "VAULTCRAFT_OUTBOX_REST_MS": "300"})
    book = create_book(engine, 0)
    with RelayThread(resting):
        insert_events(engine, book, 1)
        time.sleep(1.5)  # idle: the next commit is relayed at once
        monkeypatch.setattr(OutboxRelay, "drain", counted)
        started = time.monotonic()
        ids: list[UUID] = []
        while time.monotonic() - started < 0.9:
            ids += insert_events(engine, book, 1)
            time.sleep(0.02)
        while unrelayed(engine, ids):
            assert time.monotonic() - started < 5
            time.sleep(0.01)

    assert len(ids) >= 20
    assert 2 <= len(rounds) <= 7, f"{len(ids)} commits in 0.9 s, rounds 0.3 s apart: {rounds}"
    assert stream_ids(stream, set(ids)) == ids


@pytest.mark.usefixtures("settled_outbox")
def test_each_subscribed_endpoint_gets_one_relayed_delivery_per_event(
    engine: Engine, stream: redis.Redis, make_relay: type[OutboxRelay], redis_url: str
) -> None:
    book = create_book(engine, 1)
    subscribed = add_webhook(engine, book, ["wallet.status_changed", "transfer.completed"])
    add_webhook(engine, book, ["transfer.completed"])
    add_webhook(engine, book, ["wallet.status_changed"], deleted=True)
    ids = insert_events(engine, book, 5)
    relay = make_relay()
    with engine.begin() as conn:
        claim = claim_events(conn.connection.driver_connection, 10_000)
    events = [e for e in claim.events if UUID(e.event_id) in ids]
    mine = claim._replace(events=events, position=claim.previous)  # the position stays

    with engine.begin() as conn:
        created = finish_events(conn.connection.driver_connection, mine, 300)
    with engine.begin() as conn:  # the same events again, as after a crash
        again = finish_events(conn.connection.driver_connection, mine, 300)
    relay.drain()  # and whatever else was claimed above

    assert len(created) == 5 and again == []
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT webhook_id, event_id, status FROM webhook_deliveries WHERE event_id = ANY(:i)"
            ),
            {"i": ids},
        ).all()
    assert {(r.webhook_id, r.event_id) for r in rows} == {(subscribed, i) for i in ids}
    assert len(rows) == 5 and {r.status for r in rows} == {"PENDING"}


@pytest.mark.usefixtures("settled_outbox")
def test_two_relays_at_once_publish_each_event_exactly_once(
    engine: Engine, stream: redis.Redis, make_relay: type[OutboxRelay], events_env: Env
) -> None:
    book = create_book(engine, 1)
    ids = insert_events(engine, book, 3000)
    small = Settings.from_env({**events_env, "VAULTCRAFT_OUTBOX_BATCH_SIZE": "50"})
    relays = [make_relay(small), make_relay(small)]
    counts = [0, 0]
    barrier = threading.Barrier(2)

    def work(n: int) -> None:
        barrier.wait()
        while (got := relays[n].relay_batch()) > 0:
            counts[n] += got

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert unrelayed(engine, ids) == 0
    assert min(counts) > 0, counts  # both took part
    published = Counter(stream_ids(stream, set(ids)))
    assert set(published) == set(ids)
    assert max(published.values()) == 1


def start_relay(events_env: Env, tmp_path: Path, name: str) -> Process:
    env = {
        **events_env,
        "VAULTCRAFT_OUTBOX_BATCH_SIZE": "100",
        "VAULTCRAFT_WEBHOOK_RESCUE_AFTER_S": "300",
        "VAULTCRAFT_METRICS_PORT": str(free_port_block(2) - 1),
    }
    argv = [sys.executable, "-m", "vaultcraft.cli", "relay"]
    return Process(argv, env, tmp_path / f"{name}.log")


def test_a_relay_killed_mid_batch_loses_no_event(
    engine: Engine,
    stream: redis.Redis,
    events_env: Env,
    tmp_path: Path,
    no_deliveries_left_behind: None,
) -> None:
    """SIGKILL a relay after it published a batch and before it committed; another relay
    publishes them all."""
    book = create_book(engine, 1)
    webhook = add_webhook(engine, book, ["wallet.status_changed"])
    ids = insert_events(engine, book, 2000)
    with engine.connect() as holder:
        # Lock the endpoint's row: creating the batch's deliveries waits for it, after the
        # batch was published, so the relay is certainly mid-batch when it is killed.
        holder.execute(text("SELECT 1 FROM webhooks WHERE id = :w FOR UPDATE"), {"w": webhook})
        first = start_relay(events_env, tmp_path, "relay-1")
        try:
            deadline = time.monotonic() + 30
            while not _relay_waits_on_a_lock(engine):
                assert time.monotonic() < deadline, first.log()
                time.sleep(0.01)
            first.kill()
        finally:
            first.kill()
        holder.rollback()
    published_before = len(stream_ids(stream, set(ids)))
    assert published_before > 0
    assert unrelayed(engine, ids) == len(ids)  # the killed batch's mark was rolled back

    second = start_relay(events_env, tmp_path, "relay-2")
    try:
        deadline = time.monotonic() + 60
        while unrelayed(engine, ids):
            assert time.monotonic() < deadline, second.log()
            time.sleep(0.1)
    finally:
        second.stop()

    published = Counter(stream_ids(stream, set(ids)))
    assert set(published) == set(ids)  # every event at least once
    assert max(published.values()) == 2  # the killed batch was published, then again
    with engine.connect() as conn:
        deliveries = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT event_id) FROM webhook_deliveries"
                " WHERE event_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).one()
    assert tuple(deliveries) == (len(ids), len(ids))  # and one delivery per event


def _relay_waits_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity"
                    " WHERE application_name = 'vaultcraft-outbox-relay'"
                    " AND datname = current_database() AND wait_event_type = 'Lock')"
                )
            )
        )


@contextmanager
def open_writer(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection whose transaction the test commits or rolls back itself."""
    dsn = to_psycopg_url(database_url)
    with psycopg.connect(dsn) as conn:
        yield conn


def write_event(conn: psycopg.Connection[tuple[object, ...]], book: Book) -> UUID:
    """Insert an event on `conn` without committing; its id is drawn now."""
    row = conn.execute(
        "INSERT INTO outbox (organization_id, type, data)"
        " VALUES (%s, 'wallet.status_changed', '{}') RETURNING event_id",
        (book.organization_id,),
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def drain_until(relay: OutboxRelay, done: Callable[[], bool], within_s: float = 30) -> None:
    """Drain until `done()`: a gap settles once every transaction that might fill it on the
    server has ended, and other tests' transactions may hold it for a moment."""
    deadline = time.monotonic() + within_s
    relay.drain()
    while not done():
        assert time.monotonic() < deadline, "the relay never passed the gap"
        time.sleep(0.01)
        relay.drain()


def test_an_event_that_commits_late_is_published_before_the_ones_drawn_after_it(
    engine: Engine, stream: redis.Redis, make_relay: type[OutboxRelay], database_url: str
) -> None:
    book = create_book(engine, 1)
    relay = make_relay()
    with open_writer(database_url) as late:
        held = write_event(late, book)  # drawn first, committed last
        after = insert_events(engine, book, 3)
        for _ in range(3):  # horizons read meanwhile never settle a gap still running
            relay.drain()
            assert relay.blocked
            assert unrelayed(engine, after) == 3 and stream_ids(stream, set(after)) == []
        late.commit()
    drain_until(relay, lambda: unrelayed(engine, after) == 0)
    assert stream_ids(stream, {held, *after}) == [held, *after]
    assert not relay.blocked


def test_an_id_rolled_back_does_not_hold_the_events_after_it(
    engine: Engine, stream: redis.Redis, make_relay: type[OutboxRelay], database_url: str
) -> None:
    book = create_book(engine, 1)
    relay = make_relay()
    with open_writer(database_url) as gone:
        write_event(gone, book)
        after = insert_events(engine, book, 2)
        gone.rollback()
    drain_until(relay, lambda: unrelayed(engine, after) == 0)
    assert stream_ids(stream, set(after)) == after
    assert not relay.blocked


def test_the_horizon_holds_a_running_writer_and_leaves_other_databases_out(
    engine: Engine, database_url: str
) -> None:
    """The writer takes its transaction id after a transaction that then commits: it is at
    or past the snapshot's `xmax`, where PostgreSQL does not list it."""
    dsn = to_psycopg_url(database_url)
    elsewhere = make_url(dsn).set(database="postgres").render_as_string(hide_password=False)
    with (
        psycopg.connect(dsn) as first,
        psycopg.connect(dsn) as writer,
        psycopg.connect(elsewhere) as other,
        psycopg.connect(dsn, autocommit=True) as relay,
    ):
        first.execute("SELECT pg_current_xact_id()")
        row = writer.execute("SELECT CAST(pg_current_xact_id() AS text)").fetchone()
        foreign = other.execute("SELECT CAST(pg_current_xact_id() AS text)").fetchone()
        first.commit()
        horizon = read_horizon(relay)
        assert row is not None and foreign is not None
        running = horizon.running.strip("{}").split(",")
        assert row[0] in running and foreign[0] not in running
        writer.rollback()
        other.rollback()


def test_outbox_ids_come_from_the_sequence_after_the_transaction_id(engine: Engine) -> None:
    book = create_book(engine, 0)
    with engine.connect() as conn:
        assert (
            conn.scalar(
                text("SELECT seqcache FROM pg_sequence WHERE seqrelid = 'outbox_id_seq'::regclass")
            )
            == 1
        )
        with pytest.raises(DBAPIError, match="GENERATED ALWAYS"):
            conn.execute(
                text(
                    "INSERT INTO outbox (id, organization_id, type, data)"
                    " VALUES (1, :o, 'wallet.status_changed', '{}')"
                ),
                {"o": book.organization_id},
            )
        conn.rollback()
        # A fresh transaction has no id yet. The row below is formed only if the statement
        # trigger gave it one before the row was formed, and so before its id was drawn.
        formed = conn.execute(
            text(
                "INSERT INTO outbox (organization_id, type, data)"
                " SELECT :o, 'wallet.status_changed', '{}'"
                " WHERE pg_current_xact_id_if_assigned() IS NOT NULL RETURNING id"
            ),
            {"o": book.organization_id},
        ).all()
        assert len(formed) == 1
        conn.rollback()
        with pytest.raises(DBAPIError, match="UPDATE on outbox is refused"):
            conn.execute(text("UPDATE outbox SET type = type WHERE false"))
        conn.rollback()
