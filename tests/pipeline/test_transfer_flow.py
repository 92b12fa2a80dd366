"""Submit, post and read transfers through the running system."""

from __future__ import annotations

import time
import uuid

import httpx
from sqlalchemy import Engine, text

from tests.support.stack_api import signup


def test_a_transfer_posts_and_is_explained_by_its_entries(http: httpx.Client) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    resp = t.transfer(a, b, "30.25")
    assert resp.status_code == 202
    assert resp.headers["Location"] == f"/api/v1/transactions/{resp.json()['id']}"
    assert resp.json()["status"] == "PENDING"
    final = t.wait_final(resp.json()["id"])
    assert final["status"] == "COMPLETED" and final["posted_at"] is not None
    assert (t.balance(a), t.balance(b)) == ("69.75", "30.25")
    ledger = t.get(f"/api/v1/transactions/{final['id']}/ledger").json()["data"]
    assert sorted((e["direction"], e["amount"], e["balance_after"]) for e in ledger) == [
        ("CREDIT", "30.25", "30.25"),
        ("DEBIT", "30.25", "69.75"),
    ]
    statement = t.get(f"/api/v1/wallets/{a}/entries").json()["data"]
    assert [e["balance_after"] for e in statement] == ["100.00", "69.75"]


def test_insufficient_funds_fail_and_move_nothing(http: httpx.Client) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "10.00")
    final = t.wait_final(t.transfer(a, b, "10.01").json()["id"])
    assert (final["status"], final["failure_code"]) == ("FAILED", "insufficient_funds")
    assert (t.balance(a), t.balance(b)) == ("10.00", "0.00")


def test_idempotency_replays_and_refuses_a_changed_body(http: httpx.Client) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "50.00")
    key = str(uuid.uuid4())
    first = t.transfer(a, b, "5.00", key=key)
    again = t.transfer(a, b, "5.00", key=key)
    changed = t.transfer(a, b, "6.00", key=key)
    assert first.status_code == 202
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_reused"
    missing = t.post(
        "/api/v1/transactions/transfer",
        {"source_wallet_id": a, "destination_wallet_id": b, "amount": "1.00", "currency": "USD"},
    )
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_required"


def test_submit_checks_refuse_before_storing(http: httpx.Client) -> None:
    t, other = signup(http), signup(http)
    a, b = t.wallet(), t.wallet()
    foreign = other.wallet()
    eur = t.wallet(currency="EUR")
    cases = [
        (t.transfer(a, a, "1.00"), 422, "same_wallet"),
        (t.transfer(a, foreign, "1.00"), 404, "not_found"),
        (t.transfer(a, eur, "1.00"), 422, "currency_mismatch"),
        (t.transfer(a, b, "1.001"), 422, "invalid_amount"),
        (t.transfer(a, b, "0"), 422, "invalid_amount"),
        (t.transfer(str(uuid.uuid4()), b, "1.00"), 404, "not_found"),
    ]
    for resp, status, code in cases:
        assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
    assert t.get("/api/v1/transactions").json()["data"] == []


def test_long_poll_returns_as_soon_as_the_transfer_is_final(http: httpx.Client) -> None:
    t = signup(http)
    a = t.wallet()
    resp = t.transfer(t.system_wallet_id, a, "1.00")
    started = time.monotonic()
    body = t.get(f"/api/v1/transactions/{resp.json()['id']}", params={"wait": 10}).json()
    assert body["status"] == "COMPLETED"
    assert time.monotonic() - started < 5


def test_cancel_wins_or_loses_cleanly(http: httpx.Client) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    posted = t.transfer(a, b, "1.00").json()
    t.wait_final(posted["id"])
    late = t.post(f"/api/v1/transactions/{posted['id']}/cancel")
    assert late.status_code == 409 and late.json()["code"] == "not_cancellable"


def test_reversal_never_exceeds_the_original(http: httpx.Client) -> None:
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "100.00")
    original = t.wait_final(t.transfer(a, b, "40.00").json()["id"])
    part = t.post(
        f"/api/v1/transactions/{original['id']}/reverse", {"amount": "15.00"}, key=str(uuid.uuid4())
    )
    assert part.status_code == 202 and part.json()["reverses_transaction_id"] == original["id"]
    too_much = t.post(
        f"/api/v1/transactions/{original['id']}/reverse", {"amount": "25.01"}, key=str(uuid.uuid4())
    )
    assert too_much.status_code == 422 and too_much.json()["code"] == "reversal_exceeds_original"
    rest_key = str(uuid.uuid4())
    rest = t.post(f"/api/v1/transactions/{original['id']}/reverse", {}, key=rest_key)
    assert rest.status_code == 202 and rest.json()["amount"] == "25.00"
    replay = t.post(f"/api/v1/transactions/{original['id']}/reverse", {}, key=rest_key)
    assert replay.status_code == 200 and replay.json()["id"] == rest.json()["id"]
    for r in (part, rest):
        assert t.wait_final(r.json()["id"])["status"] == "COMPLETED"
    assert (t.balance(a), t.balance(b)) == ("100.00", "0.00")


def test_a_batch_is_stored_in_order_and_atomic_batches_fail_whole(http: httpx.Client) -> None:
    t = signup(http)
    a, b, c = t.wallet(), t.wallet(), t.wallet()
    t.deposit(a, "10.00")

    def item(src: str, dst: str, amount: str) -> dict[str, str]:
        return {
            "idempotency_key": str(uuid.uuid4()),
            "source_wallet_id": src,
            "destination_wallet_id": dst,
            "amount": amount,
            "currency": "USD",
        }

    atomic = t.post(
        "/api/v1/transactions/batch",
        {"atomic": True, "transfers": [item(a, b, "6.00"), item(a, c, "6.00")]},
    )
    assert atomic.status_code == 202, atomic.text
    outcomes = [t.wait_final(x["id"]) for x in atomic.json()["data"]]
    assert sorted(o["failure_code"] for o in outcomes) == [
        "atomic_batch_failed",
        "insufficient_funds",
    ]
    loose = t.post(
        "/api/v1/transactions/batch", {"transfers": [item(a, b, "6.00"), item(a, c, "6.00")]}
    )
    outcomes = [t.wait_final(x["id"])["status"] for x in loose.json()["data"]]
    assert outcomes == ["COMPLETED", "FAILED"]
    assert (t.balance(a), t.balance(b), t.balance(c)) == ("4.00", "6.00", "0.00")
    bad = t.post(
        "/api/v1/transactions/batch",
        {"transfers": [item(a, b, "1.00"), item(a, str(uuid.uuid4()), "1.00")]},
    )
    assert bad.status_code == 404 and bad.json()["errors"][0]["field"].startswith("transfers[1]")


def test_the_running_processes_post_as_the_service_role(http: httpx.Client, engine: Engine) -> None:
    """Gateway and workers connect as `vaultcraft_service`, and posting works under its
    guards (no UPDATE on entries, balances checked against them)."""
    t = signup(http)
    a, b = t.wallet(), t.wallet()
    t.deposit(a, "20.00")
    final = t.wait_final(t.transfer(a, b, "7.50").json()["id"])
    assert final["status"] == "COMPLETED"
    with engine.connect() as conn:
        roles = dict(
            conn.execute(
                text(
                    "SELECT application_name, string_agg(DISTINCT usename, ',')"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name IN ('vaultcraft-worker', 'vaultcraft-audit-sealer')"
                    " GROUP BY application_name"
                )
            ).all()
        )
    assert roles == {
        "vaultcraft-worker": "vaultcraft_service",
        "vaultcraft-audit-sealer": "vaultcraft_service",
    }
