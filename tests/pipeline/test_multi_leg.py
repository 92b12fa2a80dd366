"""Multi-leg transactions through the running system: all legs post together or none do."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import Engine

from tests.support.ledger_checks import assert_ledger_sound
from tests.support.stack_api import leg, signup


def test_all_legs_post_together_in_several_currencies(http: httpx.Client, engine: Engine) -> None:
    t = signup(http)
    a, b, c = t.wallet(), t.wallet(), t.wallet()
    eur_system, eur = t.wallet(currency="EUR", type="SYSTEM"), t.wallet(currency="EUR")
    t.deposit(a, "100.00")
    legs = [
        leg(a, b, "30.00"),
        leg(a, c, "20.00"),
        leg(b, c, "5.00"),
        leg(eur_system, eur, "7.50", "EUR"),
    ]
    resp = t.multi(legs, description="split order 7")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["kind"] == "MULTI" and body["postings"] == legs
    final = t.wait_final(body["id"])
    assert final["status"] == "COMPLETED", final
    assert (t.balance(a), t.balance(b), t.balance(c)) == ("50.00", "25.00", "25.00")
    assert (t.balance(eur_system), t.balance(eur)) == ("-7.50", "7.50")
    ledger = t.get(f"/api/v1/transactions/{body['id']}/ledger").json()["data"]
    assert len(ledger) == 2 * len(legs)
    assert_ledger_sound(engine)


def test_one_underfunded_leg_fails_the_whole_transaction(
    http: httpx.Client, engine: Engine
) -> None:
    t = signup(http)
    a, b, c = t.wallet(), t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    legs = [leg(a, b, "6.00"), leg(a, c, "4.01")]
    final = t.wait_final(t.multi(legs).json()["id"])
    assert (final["status"], final["failure_code"]) == ("FAILED", "insufficient_funds")
    assert final["failure_message"].startswith("posting 2 of 2")
    assert (t.balance(a), t.balance(b), t.balance(c)) == ("10.00", "0.00", "0.00")
    assert t.get(f"/api/v1/transactions/{final['id']}/ledger").json()["data"] == []
    assert_ledger_sound(engine)


def test_a_multi_leg_transaction_replays_with_its_key(http: httpx.Client) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    key = str(uuid.uuid4())
    legs = [leg(a, b, "1.00"), leg(a, b, "2.00")]
    first = t.multi(legs, key)
    again = t.multi(legs, key)
    changed = t.multi([leg(a, b, "1.00")], key)
    assert first.status_code == 202
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_reused"
    assert t.wait_final(first.json()["id"])["status"] == "COMPLETED"
    assert (t.balance(a), t.balance(b)) == ("7.00", "3.00")


def test_bad_legs_are_refused_before_storing(http: httpx.Client) -> None:
    t, other = signup(http), signup(http)
    a, b = t.wallet(), t.wallet()
    foreign = other.wallet()
    cases = [
        (t.multi([]), 422, None),
        (t.multi([leg(a, b, "1.00")] * 101), 422, None),
        (t.multi([leg(a, b, "1.00"), leg(a, a, "1.00")]), 422, "same_wallet"),
        (t.multi([leg(a, b, "1.00"), leg(a, foreign, "1.00")]), 404, "not_found"),
        (t.multi([leg(a, b, "1.001")]), 422, "invalid_amount"),
        (t.multi([leg(a, b, "1.00", "EUR")]), 422, "currency_mismatch"),
    ]
    for resp, status, code in cases:
        assert resp.status_code == status, resp.text
        if code is not None:
            assert resp.json()["code"] == code, resp.text
    assert cases[3][0].json()["errors"][0]["field"].startswith("postings[1]")
    assert t.get("/api/v1/transactions").json()["data"] == []
