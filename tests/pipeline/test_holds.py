"""Holds, captures, voids, expiry and overdraft limits through the running system."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.support.ledger_checks import assert_ledger_sound, double_postings
from tests.support.stack import Stack
from tests.support.stack_api import Tenant, signup


@pytest.fixture(scope="module")
def stack(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Gateway, posting workers, relay and a scheduler that expires holds every second."""
    data_dir: Path = tmp_path_factory.mktemp("holds")
    env = {"VAULTCRAFT_RESCUE_INTERVAL_S": "1", "VAULTCRAFT_PENDING_RESCUE_AFTER_S": "2"}
    with Stack(database_url, redis_url, data_dir, scheduler=True, extra_env=env) as running:
        yield running


def _hold(t: Tenant, src: str, dst: str, amount: str, **extra: Any) -> httpx.Response:
    body = {
        "source_wallet_id": src,
        "destination_wallet_id": dst,
        "amount": amount,
        "currency": "USD",
        "hold": True,
        **extra,
    }
    return t.post("/api/v1/transactions/transfer", body, key=str(uuid.uuid4()))


def _placed(t: Tenant, src: str, dst: str, amount: str, **extra: Any) -> dict[str, Any]:
    resp = _hold(t, src, dst, amount, **extra)
    assert resp.status_code == 202, resp.text
    placed = t.wait_final(resp.json()["id"])
    assert placed["status"] == "HELD", placed
    return placed


def _wallet(t: Tenant, wallet: str) -> dict[str, Any]:
    body: dict[str, Any] = t.get(f"/api/v1/wallets/{wallet}").json()
    return body


def _end(t: Tenant, tx: str, action: str, body: dict[str, Any], key: str | None = None):
    return t.post(f"/api/v1/transactions/{tx}/{action}", body, key=key or str(uuid.uuid4()))


def _decided(t: Tenant, asked: httpx.Response) -> dict[str, Any]:
    """Long-poll the capture or void a `202` answered with until a worker decided it."""
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "PENDING"
    location = asked.headers["Location"]
    deadline = time.monotonic() + 20
    while (action := t.get(f"{location}?wait=10").json())["status"] == "PENDING":
        assert time.monotonic() < deadline, "the action was never decided"
    return dict(action)


def _ended(t: Tenant, tx: str, action: str, body: dict[str, Any], key: str | None = None):
    """Capture or void, wait for the worker, return the transfer as it now is."""
    decided = _decided(t, _end(t, tx, action, body, key))
    assert decided["status"] == "COMPLETED", decided
    return dict(t.get(f"/api/v1/transactions/{tx}").json())


def test_a_hold_reserves_and_a_full_capture_posts_it(http: httpx.Client, engine: Engine) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    placed = _placed(t, a, b, "40.00")
    assert placed["hold_amount"] == "40.00" and placed["hold_expires_at"] is not None
    wallet = _wallet(t, a)
    assert (wallet["balance"], wallet["held"], wallet["available_balance"]) == (
        "100.00",
        "40.00",
        "60.00",
    )
    assert t.get(f"/api/v1/transactions/{placed['id']}/ledger").json()["data"] == []
    key = str(uuid.uuid4())
    asked = _end(t, placed["id"], "capture", {}, key)
    assert asked.headers["Location"].endswith(f"/actions/{asked.json()['id']}")
    decided = _decided(t, asked)
    assert (decided["action"], decided["amount"]) == ("capture", None)
    assert decided["decided_at"] is not None and decided["failure_code"] is None
    captured = t.get(f"/api/v1/transactions/{placed['id']}").json()
    assert (captured["status"], captured["amount"]) == ("COMPLETED", "40.00")
    replay = _end(t, placed["id"], "capture", {}, key)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert (replay.json()["id"], replay.json()["status"]) == (decided["id"], "COMPLETED")
    other_body = _end(t, placed["id"], "void", {}, key)
    assert (other_body.status_code, other_body.json()["code"]) == (422, "idempotency_key_reused")
    again = _end(t, placed["id"], "capture", {})
    assert (again.status_code, again.json()["code"]) == (409, "not_held")
    assert (t.balance(a), t.balance(b), _wallet(t, a)["held"]) == ("60.00", "40.00", "0.00")
    with engine.connect() as conn:
        events = conn.execute(
            text("SELECT type FROM outbox WHERE data ->> 'id' = :id ORDER BY id"),
            {"id": placed["id"]},
        ).scalars()
        assert list(events) == ["transfer.held", "transfer.captured"]
    ledger = t.get(f"/api/v1/transactions/{placed['id']}/ledger").json()["data"]
    assert sorted((e["direction"], e["amount"]) for e in ledger) == [
        ("CREDIT", "40.00"),
        ("DEBIT", "40.00"),
    ]
    assert_ledger_sound(engine)


def test_a_partial_capture_releases_the_rest(http: httpx.Client, engine: Engine) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    placed = _placed(t, a, b, "50.00")
    too_much = _end(t, placed["id"], "capture", {"amount": "50.01"})
    assert (too_much.status_code, too_much.json()["code"]) == (422, "capture_exceeds_hold")
    body = _ended(t, placed["id"], "capture", {"amount": "12.34"})
    assert (body["status"], body["amount"], body["hold_amount"]) == ("COMPLETED", "12.34", "50.00")
    wallet = _wallet(t, a)
    assert (wallet["balance"], wallet["held"], wallet["available_balance"]) == (
        "87.66",
        "0.00",
        "87.66",
    )
    assert t.balance(b) == "12.34"
    assert_ledger_sound(engine)


def test_a_void_releases_everything_and_writes_no_entry(http: httpx.Client, engine: Engine) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "30.00")
    placed = _placed(t, a, b, "30.00")
    spend = t.wait_final(t.transfer(a, b, "0.01").json()["id"])
    assert (spend["status"], spend["failure_code"]) == ("FAILED", "insufficient_funds")
    assert _ended(t, placed["id"], "void", {})["status"] == "VOIDED"
    with engine.connect() as conn:
        actions = conn.execute(
            text("SELECT action FROM audit_logs WHERE resource_id = :id ORDER BY id"),
            {"id": placed["id"]},
        ).scalars()
        assert list(actions) == [
            "transfer.submitted",
            "transfer.void_requested",
            "transfer.voided",
        ]
    assert t.get(f"/api/v1/transactions/{placed['id']}/ledger").json()["data"] == []
    assert (t.balance(a), _wallet(t, a)["held"], t.balance(b)) == ("30.00", "0.00", "0.00")
    capture = _end(t, placed["id"], "capture", {})
    assert (capture.status_code, capture.json()["code"]) == (409, "not_held")
    (usd,) = t.get("/api/v1/wallets/summary").json()["data"]
    assert usd["transfers_by_status"]["VOIDED"] == {"count": 1, "volume": "30.00"}
    assert_ledger_sound(engine)


def test_a_hold_expires_and_its_funds_come_back(http: httpx.Client, engine: Engine) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "20.00")
    placed = _placed(t, a, b, "15.00", hold_expires_in_s=1)
    deadline = time.monotonic() + 20
    while (status := t.get(f"/api/v1/transactions/{placed['id']}").json()["status"]) == "HELD":
        assert time.monotonic() < deadline, "the hold never expired"
        time.sleep(0.3)
    assert status == "EXPIRED"
    assert (_wallet(t, a)["held"], t.balance(a)) == ("0.00", "20.00")
    capture = _end(t, placed["id"], "capture", {})
    assert (capture.status_code, capture.json()["code"]) == (409, "not_held")
    assert_ledger_sound(engine)


def _outcome(t: Tenant, answer: httpx.Response) -> str:
    """`won`, or how the request lost: refused at once, or decided FAILED not_held."""
    if answer.status_code == 409:
        assert answer.json()["code"] == "not_held"
        return "refused"
    decided = _decided(t, answer)
    if decided["status"] == "COMPLETED":
        return "won"
    assert decided["failure_code"] == "not_held", decided
    return "lost"


def test_a_capture_racing_a_void_ends_the_hold_once(http: httpx.Client, engine: Engine) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    holds = [_placed(t, a, b, "5.00")["id"] for _ in range(8)]
    calls = [(h, action) for h in holds for action in ("capture", "void")]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda c: _end(t, c[0], c[1], {}), calls))
    outcomes = [_outcome(t, r) for r in answers]
    for n, hold in enumerate(holds):
        pair = outcomes[2 * n : 2 * n + 2]
        assert pair.count("won") == 1, (hold, pair)
        final = t.get(f"/api/v1/transactions/{hold}").json()["status"]
        winner = calls[2 * n + pair.index("won")][1]
        assert final == {"capture": "COMPLETED", "void": "VOIDED"}[winner]
    assert "lost" in outcomes, "no race reached the workers"
    captured = sum(
        1 for h in holds if t.get(f"/api/v1/transactions/{h}").json()["status"] == "COMPLETED"
    )
    assert t.balance(b) == f"{5 * captured}.00"
    assert _wallet(t, a)["held"] == "0.00"
    assert_ledger_sound(engine)
    with engine.connect() as conn:
        assert double_postings(conn) == []
        ended_twice = conn.execute(
            text(
                "SELECT transaction_id FROM hold_actions WHERE status = 'COMPLETED'"
                " GROUP BY transaction_id HAVING count(*) > 1"
            )
        ).all()
        assert ended_twice == []


def test_a_capture_racing_the_expiry_ends_the_hold_once(http: httpx.Client, engine: Engine) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    holds = [_placed(t, a, b, "1.00", hold_expires_in_s=1)["id"] for _ in range(10)]
    answers = {h: _end(t, h, "capture", {}) for h in holds}
    won = 0
    for h, answer in answers.items():
        outcome = _outcome(t, answer)
        final = t.wait_final(h)["status"]
        assert final == ("COMPLETED" if outcome == "won" else "EXPIRED"), (outcome, final)
        won += outcome == "won"
    assert t.balance(b) == f"{won}.00"
    assert _wallet(t, a)["held"] == "0.00"
    assert_ledger_sound(engine)


def test_an_open_hold_counts_in_a_window_limit_and_its_capture_is_not_declined(
    http: httpx.Client, engine: Engine
) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    rule = {"kind": "WINDOW_DEBITS", "currency": "USD", "max_amount": "30.00"}
    rule |= {"window_seconds": 3600, "wallet_id": a}
    made = t.post("/api/v1/risk-rules", rule)
    assert made.status_code == 201, made.text
    placed = _placed(t, a, b, "20.00")
    over = t.wait_final(_hold(t, a, b, "15.00").json()["id"])
    assert (over["status"], over["failure_code"]) == ("FAILED", "limit_exceeded")
    lowered = t.http.patch(
        f"/api/v1/risk-rules/{made.json()['id']}", json={"max_amount": "1.00"}, headers=t.headers
    )
    assert lowered.status_code == 200, lowered.text
    assert _ended(t, placed["id"], "capture", {})["status"] == "COMPLETED"
    assert t.balance(b) == "20.00"
    assert_ledger_sound(engine)


def test_a_hundred_concurrent_holds_never_over_reserve(http: httpx.Client, engine: Engine) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "50.00")
    with ThreadPoolExecutor(max_workers=16) as pool:
        accepted = list(pool.map(lambda _: _hold(t, a, b, "1.00"), range(100)))
    assert all(r.status_code == 202 for r in accepted)
    finals = [t.wait_final(r.json()["id"]) for r in accepted]
    held = [f for f in finals if f["status"] == "HELD"]
    failed = [f for f in finals if f["status"] == "FAILED"]
    assert (len(held), len(failed)) == (50, 50)
    assert {f["failure_code"] for f in failed} == {"insufficient_funds"}
    wallet = _wallet(t, a)
    assert (wallet["balance"], wallet["held"], wallet["available_balance"]) == (
        "50.00",
        "50.00",
        "0.00",
    )
    assert_ledger_sound(engine)


def test_an_overdraft_limit_is_honoured_and_refused_beyond(
    http: httpx.Client, engine: Engine
) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    patched = t.http.patch(
        f"/api/v1/wallets/{a}", json={"overdraft_limit": "25.00"}, headers=t.headers
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["overdraft_limit"], patched.json()["available_balance"]) == (
        "25.00",
        "35.00",
    )
    done = t.wait_final(t.transfer(a, b, "30.00").json()["id"])
    assert done["status"] == "COMPLETED" and t.balance(a) == "-20.00"
    beyond = t.wait_final(t.transfer(a, b, "5.01").json()["id"])
    assert (beyond["status"], beyond["failure_code"]) == ("FAILED", "insufficient_funds")
    lower = t.http.patch(f"/api/v1/wallets/{a}", json={"overdraft_limit": "0"}, headers=t.headers)
    assert (lower.status_code, lower.json()["code"]) == (409, "overdraft_in_use")
    system = t.http.patch(
        f"/api/v1/wallets/{t.system_wallet_id}", json={"overdraft_limit": "1.00"}, headers=t.headers
    )
    assert system.status_code == 422
    empty = t.http.patch(f"/api/v1/wallets/{a}", json={}, headers=t.headers)
    assert empty.status_code == 422
    assert_ledger_sound(engine)


def test_hold_requests_are_checked_before_storing(http: httpx.Client) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    too_long = _hold(t, a, b, "1.00", hold_expires_in_s=30 * 86_400 + 1)
    assert too_long.status_code == 422
    without_hold = t.post(
        "/api/v1/transactions/transfer",
        {
            "source_wallet_id": a,
            "destination_wallet_id": b,
            "amount": "1.00",
            "currency": "USD",
            "hold_expires_in_s": 60,
        },
        key=str(uuid.uuid4()),
    )
    assert without_hold.status_code == 422
    t.deposit(a, "5.00")
    plain = t.wait_final(t.transfer(a, b, "1.00").json()["id"])
    void = _end(t, plain["id"], "void", {})
    assert (void.status_code, void.json()["code"]) == (409, "not_held")
    missing_key = t.post(f"/api/v1/transactions/{plain['id']}/void", {})
    assert missing_key.status_code == 400
    unknown = _end(t, str(uuid.uuid4()), "void", {})
    assert unknown.status_code == 404


def test_a_cross_org_hold_captures_through_the_clearing_wallets(
    http: httpx.Client, engine: Engine
) -> None:
    payer, payee = signup(http), signup(http)
    linked = payee.post("/api/v1/counterparties", {"organization_id": payer.organization_id})
    assert linked.status_code == 201, linked.text
    a, b = payer.wallet(), payee.wallet()
    payer.deposit(a, "50.00")
    placed = _placed(payer, a, b, "20.00")
    assert placed["kind"] == "CROSS_ORG"
    assert _ended(payer, placed["id"], "capture", {"amount": "15.00"})["status"] == "COMPLETED"
    assert (payer.balance(a), payee.balance(b)) == ("35.00", "15.00")
    ledger = payer.get(f"/api/v1/transactions/{placed['id']}/ledger").json()["data"]
    assert sorted((e["direction"], e["amount"]) for e in ledger) == [  # the payer's books
        ("CREDIT", "15.00"),
        ("DEBIT", "15.00"),
    ]
    assert _wallet(payer, a)["held"] == "0.00"
    payee_side = _end(payee, placed["id"], "void", {})
    assert payee_side.status_code == 404  # only the payer ends a hold
    assert_ledger_sound(engine)


def test_a_long_poll_on_an_action_answers_when_a_worker_decides_it(
    http: httpx.Client, engine: Engine
) -> None:
    """`?wait=` on a capture or void answers on the workers' notification, winner or loser,
    well before the waiter's 5-second re-read would have."""
    t = signup(http)
    src = t.wallet()
    t.deposit(src, "100.00")
    for _ in range(5):  # a void that arrives after the capture was decided is refused at once
        placed = _placed(t, src, t.wallet(), "4.00")
        capture = _end(t, placed["id"], "capture", {})
        void = _end(t, placed["id"], "void", {})
        if void.status_code == 202:
            break
        assert (void.status_code, void.json()["code"]) == (409, "not_held")
    assert void.status_code == 202, "every void came after its capture was decided"
    for asked, status in ((capture, "COMPLETED"), (void, "FAILED")):
        started = time.monotonic()
        decided = t.get(f"{asked.headers['Location']}?wait=10").json()
        assert decided["status"] == status, decided
        assert time.monotonic() - started < 3
    assert decided["failure_code"] == "not_held"
    with engine.connect() as conn:  # the ending is audited once, in the asker's name
        audited = conn.execute(
            text(
                "SELECT action, actor_id, details->>'hold_action_id' FROM audit_logs"
                " WHERE resource_id = :hold AND action IN ('transfer.captured', 'transfer.voided')"
            ),
            {"hold": placed["id"]},
        ).all()
    assert [tuple(map(str, row)) for row in audited] == [
        ("transfer.captured", t.user_id, capture.json()["id"])
    ]
