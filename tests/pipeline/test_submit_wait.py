"""`?wait=N` on a submit: one request that answers once the transfer is decided."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.support.stack_api import Tenant, leg, signup

TRANSFER = "/api/v1/transactions/transfer"


def _submit(
    t: Tenant, body: dict[str, object], wait: object, key: str | None = None, path: str = TRANSFER
) -> httpx.Response:
    return t.post(path, body, key=key or str(uuid.uuid4()), params={"wait": wait})


def _as_read_now(t: Tenant, answered: dict[str, object]) -> bool:
    """Whether a decided answer shows the transfer exactly as a read of it does now: a
    submitter's wait may build it from the row it stored and the final notification."""
    read = t.get(f"/api/v1/transactions/{answered['id']}")
    assert read.status_code == 200, read.text
    return bool(read.json() == answered)


@contextmanager
def _wallet_held_by_another_transaction(engine: Engine, wallet: str) -> Iterator[None]:
    """Posting skips a transfer whose wallet another transaction holds (`SKIP LOCKED`), so
    the transfer stays PENDING until the block ends. `FOR NO KEY UPDATE`, as posting locks
    wallets: the intake's foreign-key checks (`FOR KEY SHARE`) still go through."""
    with engine.begin() as conn:
        conn.execute(text("SELECT 1 FROM wallets WHERE id = :id FOR NO KEY UPDATE"), {"id": wallet})
        yield


def test_a_submit_with_wait_answers_with_the_decided_transfer(http: httpx.Client) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    started = time.monotonic()
    posted = _submit(t, leg(a, b, "4.00"), 10)
    failed = _submit(t, leg(a, b, "6.01"), 10)
    assert time.monotonic() - started < 10
    assert posted.status_code == 202, posted.text
    assert posted.headers["Location"] == f"/api/v1/transactions/{posted.json()['id']}"
    assert (posted.json()["status"], posted.json()["amount"]) == ("COMPLETED", "4.00")
    assert posted.json()["posted_at"] is not None
    assert _as_read_now(t, posted.json()) and _as_read_now(t, failed.json())
    assert failed.status_code == 202, failed.text
    assert (failed.json()["status"], failed.json()["failure_code"]) == (
        "FAILED",
        "insufficient_funds",
    )
    assert (t.balance(a), t.balance(b)) == ("6.00", "4.00")


def test_a_submit_with_wait_answers_pending_when_the_time_runs_out(
    http: httpx.Client, engine: Engine
) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    with _wallet_held_by_another_transaction(engine, a):
        started = time.monotonic()
        resp = _submit(t, leg(a, b, "1.00"), 1)
        waited = time.monotonic() - started
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "PENDING"
    assert 1.0 <= waited < 5
    assert t.wait_final(resp.json()["id"])["status"] == "COMPLETED"


def test_a_replayed_submit_with_wait_waits_for_the_stored_transfer(
    http: httpx.Client, engine: Engine
) -> None:
    """A client whose answer was lost sends the same request again, and waits again."""
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    key = str(uuid.uuid4())
    held, release = threading.Event(), threading.Event()

    def hold_the_wallet() -> None:
        with _wallet_held_by_another_transaction(engine, a):
            held.set()
            release.wait(timeout=10)

    holder = threading.Thread(target=hold_the_wallet)
    holder.start()
    held.wait(timeout=10)
    first = _submit(t, leg(a, b, "2.00"), 0, key=key)
    assert (first.status_code, first.json()["status"]) == (202, "PENDING")
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    replay = _submit(t, leg(a, b, "2.00"), 10, key=key)
    waited = time.monotonic() - started
    holder.join(timeout=10)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert (replay.json()["id"], replay.json()["status"]) == (first.json()["id"], "COMPLETED")
    assert 0.5 < waited < 10  # it waited for the wallet to be let go, then for the posting
    assert (t.balance(a), t.balance(b)) == ("8.00", "2.00")


def test_multi_leg_and_hold_submits_wait_too(http: httpx.Client) -> None:
    t = signup(http)
    a, b, c = t.wallet(), t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    multi = _submit(
        t,
        {"postings": [leg(a, b, "1.00"), leg(a, c, "2.00")]},
        10,
        path="/api/v1/transactions",
    )
    assert (multi.status_code, multi.json()["status"]) == (202, "COMPLETED"), multi.text
    hold = _submit(t, {**leg(a, b, "3.00"), "hold": True}, 10)
    assert (hold.status_code, hold.json()["status"]) == (202, "HELD"), hold.text
    assert _as_read_now(t, multi.json()) and _as_read_now(t, hold.json())
    assert (t.balance(a), t.balance(b), t.balance(c)) == ("7.00", "1.00", "2.00")


def test_a_batch_with_wait_answers_with_every_transfer_decided(http: httpx.Client) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    items = [
        {"idempotency_key": str(uuid.uuid4()), **leg(a, b, amount)}
        for amount in ("3.00", "2.00", "9.00")
    ]
    resp = t.post("/api/v1/transactions/batch", {"transfers": items}, params={"wait": 10})
    assert resp.status_code == 202, resp.text
    statuses = [(tx["amount"], tx["status"], tx["failure_code"]) for tx in resp.json()["data"]]
    assert statuses == [
        ("3.00", "COMPLETED", None),
        ("2.00", "COMPLETED", None),
        ("9.00", "FAILED", "insufficient_funds"),
    ]
    assert all(_as_read_now(t, tx) for tx in resp.json()["data"])
    replay = t.post("/api/v1/transactions/batch", {"transfers": items}, params={"wait": 10})
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert [tx["status"] for tx in replay.json()["data"]] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert (t.balance(a), t.balance(b)) == ("5.00", "5.00")


@pytest.mark.parametrize(
    "query",
    [{"wait": 31}, {"wait": -1}, {"wait": "soon"}, {"wait": 1.5}, {"wait": 1, "poll": 1}],
)
def test_a_bad_wait_is_refused_and_stores_nothing(
    http: httpx.Client, query: dict[str, object]
) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    resp = t.post(TRANSFER, leg(t.system_wallet_id, a, "1.00"), key="k1", params=query)
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "validation_error"
    batch = {"transfers": [{"idempotency_key": "k2", **leg(t.system_wallet_id, a, "1.00")}]}
    refused = t.post("/api/v1/transactions/batch", batch, params=query)
    assert (refused.status_code, refused.json()["code"]) == (422, "validation_error")
    assert t.get("/api/v1/transactions").json()["data"] == []
    assert t.balance(b) == "0.00"
