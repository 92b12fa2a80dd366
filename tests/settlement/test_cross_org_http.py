"""Cross-organization transfers and settlement over HTTP, with the whole system running."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from runtime.settings import Settings
from tests.settlement.books_sql import events_of, nonzero_books
from tests.support.stack_api import PASSWORD, Tenant, signup

API = "/api/v1"


def accept(payee: Tenant, payer: Tenant) -> None:
    resp = payee.post(f"{API}/counterparties", {"organization_id": payer.organization_id})
    assert resp.status_code == 201, resp.text


def pay(payer: Tenant, source: str, destination: str, amount: str) -> dict[str, Any]:
    resp = payer.transfer(source, destination, amount)
    assert resp.status_code == 202, resp.text
    final = payer.wait_final(resp.json()["id"])
    assert final["status"] == "COMPLETED", final
    return final


def member_of(http: httpx.Client, admin: Tenant) -> Tenant:
    email = f"member-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "full_name": "Mo Member", "role": "MEMBER"}
    assert admin.post(f"{API}/users", body).status_code == 201
    login = http.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    token = login.json()["access_token"]
    return Tenant(http, token, admin.organization_id, "", admin.system_wallet_id)


def clearing_balances(tenant: Tenant) -> list[str]:
    wallets = tenant.get(f"{API}/wallets", params={"type": "CLEARING"}).json()["data"]
    return [w["balance"] for w in wallets]


def audit_actions(books: Engine, organization_id: str) -> list[str]:
    with books.connect() as conn:
        return list(
            conn.execute(
                text("SELECT action FROM audit_logs WHERE organization_id = :o ORDER BY id"),
                {"o": organization_id},
            ).scalars()
        )


def test_an_organization_accepts_transfers_only_from_counterparties_it_added(
    http: httpx.Client, books: Engine
) -> None:
    a, b = signup(http), signup(http)
    wa, wb = a.wallet(), b.wallet()
    a.deposit(wa, "100.00")
    b.deposit(wb, "100.00")

    # Not linked: B's wallet does not exist for A
    refused = a.transfer(wa, wb, "1.00")
    assert (refused.status_code, refused.json()["code"]) == (404, "not_found")

    # B's admin adds A; the link shows in B's list and refuses duplicates and nonsense
    accept(b, a)
    listed = b.get(f"{API}/counterparties").json()
    assert [c["organization_id"] for c in listed["data"]] == [a.organization_id]
    assert listed["next_cursor"] is None
    cases = [
        (
            b.post(f"{API}/counterparties", {"organization_id": a.organization_id}),
            409,
            "counterparty_exists",
        ),
        (
            b.post(f"{API}/counterparties", {"organization_id": b.organization_id}),
            422,
            "self_counterparty",
        ),
        (b.post(f"{API}/counterparties", {"organization_id": str(uuid.uuid4())}), 404, "not_found"),
        (b.post(f"{API}/counterparties", {"organization_id": "nope"}), 422, "validation_error"),
        (
            member_of(http, b).post(
                f"{API}/counterparties", {"organization_id": a.organization_id}
            ),
            403,
            "forbidden",
        ),
    ]
    for resp, status, code in cases:
        assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text

    # Now A's transfer goes through, but the link is one-directional
    pay(a, wa, wb, "5.00")
    assert (a.balance(wa), b.balance(wb)) == ("95.00", "105.00")
    back = b.transfer(wb, wa, "1.00")
    assert (back.status_code, back.json()["code"]) == (404, "not_found")

    # Removing the link refuses new transfers again
    assert (
        b.http.delete(f"{API}/counterparties/{a.organization_id}", headers=b.headers).status_code
        == 204
    )
    again = a.transfer(wa, wb, "1.00")
    assert (again.status_code, again.json()["code"]) == (404, "not_found")
    gone = b.http.delete(f"{API}/counterparties/{a.organization_id}", headers=b.headers)
    assert (gone.status_code, gone.json()["code"]) == (404, "not_found")
    assert b.get(f"{API}/counterparties").json()["data"] == []
    actions = audit_actions(books, b.organization_id)
    assert actions.count("counterparty.added") == 1 and actions.count("counterparty.removed") == 1


def test_both_sides_see_only_their_own_books_and_settle_60_and_15_as_45(
    http: httpx.Client, books: Engine
) -> None:
    a, b, c = signup(http), signup(http), signup(http)
    accept(b, a)
    accept(a, b)
    wa, wb = a.wallet(), b.wallet()
    a.deposit(wa, "100.00")
    b.deposit(wb, "100.00")

    # Given 60.00 from A to B and 15.00 back
    sent = pay(a, wa, wb, "60.00")
    back = pay(b, wb, wa, "15.00")
    assert (sent["kind"], back["kind"]) == ("CROSS_ORG", "CROSS_ORG")

    # The payer sees its wallet; the payee sees the transfer without it
    assert a.get(f"{API}/transactions/{sent['id']}").json()["source_wallet_id"] == wa
    received = b.get(f"{API}/transactions/{sent['id']}").json()
    assert received["source_wallet_id"] is None and received["destination_wallet_id"] == wb
    assert sent["id"] in [t["id"] for t in b.get(f"{API}/transactions").json()["data"]]
    assert b.get(f"{API}/wallets/{wa}").status_code == 404
    b_wallets = {w["id"] for w in b.get(f"{API}/wallets").json()["data"]}
    b_ledger = b.get(f"{API}/transactions/{sent['id']}/ledger").json()["data"]
    a_ledger = a.get(f"{API}/transactions/{sent['id']}/ledger").json()["data"]
    assert len(b_ledger) == 2 and {e["wallet_id"] for e in b_ledger} <= b_wallets
    assert len(a_ledger) == 2 and wa in {e["wallet_id"] for e in a_ledger}
    assert sorted(e["direction"] for e in b_ledger) == ["CREDIT", "DEBIT"]
    assert c.get(f"{API}/transactions/{sent['id']}").status_code == 404

    # Each organization's books sum to zero on their own, positions in the clearing wallets
    assert nonzero_books(books) == []
    assert (clearing_balances(a), clearing_balances(b)) == (["45.00"], ["-45.00"])
    with books.connect() as conn:
        completed = conn.execute(
            text(
                "SELECT organization_id, data->>'source_wallet_id' FROM outbox"
                " WHERE type = 'transfer.completed' AND data->>'id' = :id"
            ),
            {"id": sent["id"]},
        ).all()
    assert sorted((str(o), s) for o, s in completed) == sorted(
        [(a.organization_id, wa), (b.organization_id, None)]
    )

    # When A's admin runs settlement
    run = a.post(f"{API}/settlements/run")
    assert run.status_code == 202, run.text
    [s] = run.json()["settlements"]

    # Then one settlement nets both flows, A paying B the 45.00 difference
    assert s["payer_organization_id"] == a.organization_id
    assert s["payee_organization_id"] == b.organization_id
    assert (s["gross_payer_to_payee"], s["gross_payee_to_payer"], s["net_amount"]) == (
        "60.00",
        "15.00",
        "45.00",
    )
    assert (s["currency"], s["transfer_count"], s["status"]) == ("USD", 2, "COMPLETED")
    assert s["window_start"] == sent["posted_at"] and s["window_end"] == back["posted_at"]
    assert (clearing_balances(a), clearing_balances(b)) == (["0.00"], ["0.00"])
    assert nonzero_books(books) == []
    settled_events = [
        e for e in events_of(books, "settlement.completed") if e.data["id"] == s["id"]
    ]
    assert sorted(str(e.organization_id) for e in settled_events) == sorted(
        [a.organization_id, b.organization_id]
    )

    # Both organizations read it; a third sees nothing of it
    for tenant in (a, b):
        assert tenant.get(f"{API}/settlements").json()["data"] == [s]
        assert tenant.get(f"{API}/settlements/{s['id']}").json() == s
    assert c.get(f"{API}/settlements").json()["data"] == []
    missing = c.get(f"{API}/settlements/{s['id']}")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert member_of(http, a).get(f"{API}/settlements").status_code == 403
    filtered = a.get(f"{API}/settlements", params={"payer_organization_id": b.organization_id})
    assert filtered.json()["data"] == []

    # A second run finds nothing left to settle
    again = b.post(f"{API}/settlements/run")
    assert again.status_code == 202 and again.json()["settlements"] == []
    assert "settlement.run_requested" in audit_actions(books, a.organization_id)


def test_the_scheduled_job_settles_in_the_worker(
    http: httpx.Client, tmp_path: Path, redis_url: str
) -> None:
    """The message the scheduler sends every minute is handled by the `run_settlement` actor."""
    from messaging.broker import setup_broker
    from messaging.messages import request_settlement

    a, b = signup(http), signup(http)
    accept(b, a)
    wa, wb = a.wallet(), b.wallet()
    a.deposit(wa, "10.00")
    pay(a, wa, wb, "2.50")
    pay(a, wa, wb, "1.25")

    request_settlement(
        setup_broker(Settings(database_url=None, redis_url=redis_url, data_dir=tmp_path))
    )

    deadline = time.monotonic() + 30
    while not (found := b.get(f"{API}/settlements").json()["data"]):
        assert time.monotonic() < deadline, "the worker never settled"
        time.sleep(0.2)
    [s] = found
    assert (s["net_amount"], s["transfer_count"], s["payer_organization_id"]) == (
        "3.75",
        2,
        a.organization_id,
    )
    assert (clearing_balances(a), clearing_balances(b)) == (["0.00"], ["0.00"])


def test_settlement_lists_page_newest_first(http: httpx.Client) -> None:
    a, b = signup(http), signup(http)
    accept(b, a)
    wa, wb = a.wallet(), b.wallet()
    a.deposit(wa, "10.00")
    ids = []
    for amount in ("1.00", "2.00", "3.00"):
        pay(a, wa, wb, amount)
        ids.append(a.post(f"{API}/settlements/run").json()["settlements"][0]["id"])
    first = b.get(f"{API}/settlements", params={"limit": 2}).json()
    second = b.get(f"{API}/settlements", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [s["id"] for s in first["data"] + second["data"]] == ids[::-1]
    assert second["next_cursor"] is None
    bad = b.get(f"{API}/settlements", params={"cursor": "garbage"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
