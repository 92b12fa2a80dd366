"""Multi-leg transactions with legs into other organizations, over HTTP with the whole
system running: each cross-org leg follows the rules of a cross-organization transfer
(counterparty links, clearing wallets, events and reads for its payee, settlement)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from ledger_core.persistence.reconciliation.checks import check_ledger
from ledger_core.persistence.transfers.reads import GET_TRANSFER, TransferFilter, list_sql
from ledger_core.reconciliation import Mode
from tests.settlement.books_sql import events_of, nonzero_books, settlements_agree_with_items
from tests.settlement.test_cross_org_http import accept, clearing_balances, member_of
from tests.support.stack_api import Tenant, leg, signup

API = "/api/v1"


def _ids(t: Tenant, **params: Any) -> list[str]:
    return [x["id"] for x in t.get(f"{API}/transactions", params=params).json()["data"]]


def _written(books: Engine, transaction_id: str) -> int:
    with books.connect() as conn:
        entries: int = conn.execute(
            text("SELECT count(*) FROM ledger_entries WHERE transaction_id = :id"),
            {"id": transaction_id},
        ).scalar_one()
    return entries


def _reconciled(books: Engine) -> list[Any]:
    with books.connect() as conn, conn.begin():
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        return list(check_ledger(conn, Mode.FULL, 3600).discrepancies)


def test_legs_into_two_organizations_post_report_read_and_settle(
    http: httpx.Client, books: Engine
) -> None:
    a, b, c, d = signup(http), signup(http), signup(http), signup(http)
    accept(b, a)
    accept(c, a)
    wa, fee, wb, wc = a.wallet(), a.wallet(), b.wallet(), c.wallet()
    eur_system, wb_eur = a.wallet(currency="EUR", type="SYSTEM"), b.wallet(currency="EUR")
    a.deposit(wa, "100.00")

    # Given one transaction paying B (in USD and EUR), C, and a fee inside A
    legs = [
        leg(wa, wb, "30.00"),
        leg(wa, wc, "20.00"),
        leg(wa, fee, "5.00"),
        leg(eur_system, wb_eur, "7.50", "EUR"),
    ]
    resp = a.multi(legs)
    assert resp.status_code == 202, resp.text
    sent = a.wait_final(resp.json()["id"])
    assert (sent["kind"], sent["status"]) == ("MULTI", "COMPLETED"), sent

    # Then money moved as for cross-org transfers, through each pair's clearing wallets
    assert (a.balance(wa), a.balance(fee), b.balance(wb), c.balance(wc)) == (
        "45.00",
        "5.00",
        "30.00",
        "20.00",
    )
    assert b.balance(wb_eur) == "7.50"
    assert sorted(clearing_balances(a)) == ["20.00", "30.00", "7.50"]
    assert sorted(clearing_balances(b)) == ["-30.00", "-7.50"]
    assert clearing_balances(c) == ["-20.00"]
    assert nonzero_books(books) == []

    # The payer sees every leg; each payee only its own, without the payer's wallets
    assert a.get(f"{API}/transactions/{sent['id']}").json()["postings"] == legs
    seen_b = b.get(f"{API}/transactions/{sent['id']}").json()
    assert seen_b["postings"] == [
        {**legs[0], "source_wallet_id": None},
        {**legs[3], "source_wallet_id": None},
    ]
    assert (seen_b["source_wallet_id"], seen_b["destination_wallet_id"]) == (None, wb)
    assert (seen_b["amount"], seen_b["destination_organization_id"]) == ("30.00", b.organization_id)
    assert seen_b["idempotency_key"] is None and seen_b["metadata"] == {}
    seen_c = c.get(f"{API}/transactions/{sent['id']}").json()
    assert seen_c["postings"] == [{**legs[1], "source_wallet_id": None}]
    for payee, wallet in ((b, wb), (c, wc)):
        assert sent["id"] in _ids(payee)
        assert sent["id"] in _ids(payee, wallet_id=wallet)
        assert sent["id"] in _ids(payee, kind="MULTI")
        assert _ids(payee, idempotency_key=sent["idempotency_key"]) == []
        ledger = payee.get(f"{API}/transactions/{sent['id']}/ledger").json()["data"]
        own = {w["id"] for w in payee.get(f"{API}/wallets").json()["data"]}
        assert ledger and {e["wallet_id"] for e in ledger} <= own
    assert len(b.get(f"{API}/transactions/{sent['id']}/ledger").json()["data"]) == 4
    assert len(a.get(f"{API}/transactions/{sent['id']}/ledger").json()["data"]) == 8
    assert b.get(f"{API}/wallets/{wa}").status_code == 404

    # A member of a payee who owns none of its wallets in the transaction may not read it
    assert member_of(http, b).get(f"{API}/transactions/{sent['id']}").status_code == 403

    # Each payee's summary counts it once, by its first leg into the payee
    summary = {x["currency"]: x for x in b.get(f"{API}/wallets/summary").json()["data"]}
    assert summary["USD"]["transfers_by_status"]["COMPLETED"] == {"count": 1, "volume": "30.00"}

    # A third organization sees nothing of it
    missing = d.get(f"{API}/transactions/{sent['id']}")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert _ids(d) == [] and d.get(f"{API}/transactions/{sent['id']}/ledger").status_code == 404

    # Every party gets the event, each with its own view
    completed = [e for e in events_of(books, "transfer.completed") if e.data["id"] == sent["id"]]
    views = {str(e.organization_id): e.data for e in completed}
    assert sorted(views) == sorted([a.organization_id, b.organization_id, c.organization_id])
    assert views[a.organization_id]["postings"] == legs
    assert views[b.organization_id]["postings"] == seen_b["postings"]
    assert views[c.organization_id]["postings"] == seen_c["postings"]

    # Reconciliation finds no drift
    assert _reconciled(books) == []

    # When settlement runs, each pair and currency nets its legs
    run = a.post(f"{API}/settlements/run")
    assert run.status_code == 202, run.text
    settled = {
        (s["payee_organization_id"], s["currency"]): (s["net_amount"], s["transfer_count"])
        for s in run.json()["settlements"]
    }
    assert settled == {
        (b.organization_id, "USD"): ("30.00", 1),
        (b.organization_id, "EUR"): ("7.50", 1),
        (c.organization_id, "USD"): ("20.00", 1),
    }
    for tenant in (a, b, c):
        assert set(clearing_balances(tenant)) == {"0.00"}
    assert nonzero_books(books) == [] and settlements_agree_with_items(books) == []
    assert a.post(f"{API}/settlements/run").json()["settlements"] == []
    assert _reconciled(books) == []


def test_cross_org_legs_net_with_transfers_back(http: httpx.Client, books: Engine) -> None:
    a, b = signup(http), signup(http)
    accept(b, a)
    accept(a, b)
    wa, wb = a.wallet(), b.wallet()
    a.deposit(wa, "100.00")
    b.deposit(wb, "100.00")
    sent = a.wait_final(a.multi([leg(wa, wb, "60.00"), leg(wa, wb, "10.00")]).json()["id"])
    back = b.transfer(wb, wa, "15.00")
    assert (
        sent["status"] == "COMPLETED" and b.wait_final(back.json()["id"])["status"] == "COMPLETED"
    )
    [s] = b.post(f"{API}/settlements/run").json()["settlements"]
    assert (s["payer_organization_id"], s["net_amount"], s["transfer_count"]) == (
        a.organization_id,
        "55.00",
        3,
    )
    assert (s["gross_payer_to_payee"], s["gross_payee_to_payer"]) == ("70.00", "15.00")
    assert (clearing_balances(a), clearing_balances(b)) == (["0.00"], ["0.00"])
    assert settlements_agree_with_items(books) == []


@pytest.mark.parametrize("short_leg_crosses", [True, False])
def test_one_underfunded_leg_fails_the_whole_transaction(
    http: httpx.Client, books: Engine, short_leg_crosses: bool
) -> None:
    a, b, c = signup(http), signup(http), signup(http)
    accept(b, a)
    accept(c, a)
    wa, own, wb, wc = a.wallet(), a.wallet(), b.wallet(), c.wallet()
    a.deposit(wa, "10.00")
    last = wc if short_leg_crosses else own
    final = a.wait_final(a.multi([leg(wa, wb, "6.00"), leg(wa, last, "4.01")]).json()["id"])
    assert (final["status"], final["failure_code"]) == ("FAILED", "insufficient_funds")
    assert final["failure_message"].startswith("posting 2 of 2")
    assert (a.balance(wa), b.balance(wb), c.balance(wc), a.balance(own)) == (
        "10.00",
        "0.00",
        "0.00",
        "0.00",
    )
    assert _written(books, final["id"]) == 0
    assert set(clearing_balances(a)) <= {"0.00"} and set(clearing_balances(b)) <= {"0.00"}
    failed = [e for e in events_of(books, "transfer.failed") if e.data["id"] == final["id"]]
    expected = {a.organization_id, b.organization_id}
    if short_leg_crosses:
        expected.add(c.organization_id)
    assert {str(e.organization_id) for e in failed} == expected
    assert b.get(f"{API}/transactions/{final['id']}").json()["status"] == "FAILED"


def test_a_cross_org_multi_leg_transaction_replays_with_its_key(
    http: httpx.Client, books: Engine
) -> None:
    a, b = signup(http), signup(http)
    accept(b, a)
    wa, wb = a.wallet(), b.wallet()
    a.deposit(wa, "10.00")
    key = str(uuid.uuid4())
    legs = [leg(wa, wb, "1.00"), leg(wa, wb, "2.00")]
    first, again = a.multi(legs, key), a.multi(legs, key)
    changed = a.multi([leg(wa, wb, "1.00")], key)
    assert first.status_code == 202
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert (changed.status_code, changed.json()["code"]) == (422, "idempotency_key_reused")
    assert a.wait_final(first.json()["id"])["status"] == "COMPLETED"
    assert (a.balance(wa), b.balance(wb)) == ("7.00", "3.00")
    assert _written(books, first.json()["id"]) == 8


def test_a_leg_to_an_organization_that_does_not_accept_the_payer_is_refused(
    http: httpx.Client, books: Engine
) -> None:
    a, b, stranger = signup(http), signup(http), signup(http)
    accept(b, a)
    accept(a, stranger)  # the link goes the other way: A accepts the stranger, not vice versa
    wa, wb, ws = a.wallet(), b.wallet(), stranger.wallet()
    a.deposit(wa, "10.00")
    as_transfer = a.transfer(wa, ws, "1.00")
    refused = a.multi([leg(wa, wb, "1.00"), leg(wa, ws, "1.00")])
    alone = a.multi([leg(wa, ws, "1.00")])
    assert (as_transfer.status_code, as_transfer.json()["code"]) == (404, "not_found")
    assert refused.status_code == 404 and refused.json()["code"] == "not_found", refused.text
    assert refused.json()["errors"][0]["field"] == "postings[1].destination_wallet_id"
    assert (alone.status_code, alone.json()["code"]) == (404, "not_found")
    assert len(_ids(a)) == 1 and clearing_balances(stranger) == clearing_balances(a) == []
    with books.connect() as conn:
        multis = conn.execute(
            text("SELECT count(*) FROM transactions WHERE organization_id = :o AND kind = 'MULTI'"),
            {"o": a.organization_id},
        ).scalar_one()
    assert multis == 0


def _plan_nodes(books: Engine, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with books.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"), params).scalar_one()
    found: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        found.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
    return found


def test_lookups_by_payee_organization_use_indexes(http: httpx.Client, books: Engine) -> None:
    """With sequential scans priced out, a payee's list and read still find a plan, so an
    index serves them: no scan of every transaction."""
    payee = uuid.uuid4()
    sql, params = list_sql(payee, None, TransferFilter(), 50)
    nodes = _plan_nodes(books, sql, params)
    on_transactions = [n for n in nodes if n.get("Relation Name") == "transactions"]
    assert on_transactions and all(n["Node Type"] != "Seq Scan" for n in on_transactions), nodes
    assert "ix_transactions_multi_postings" in {n.get("Index Name") for n in nodes}, nodes
    read = _plan_nodes(books, str(GET_TRANSFER), {"id": uuid.uuid4(), "org": payee})
    assert all(
        n["Node Type"] != "Seq Scan" for n in read if n.get("Relation Name") == "transactions"
    )


def test_a_payee_member_reads_the_legs_into_its_own_wallet(
    http: httpx.Client, books: Engine
) -> None:
    a, b = signup(http), signup(http)
    accept(b, a)
    member = member_of(http, b)
    wa, mine, theirs = a.wallet(), member.wallet(), b.wallet()
    a.deposit(wa, "10.00")
    sent = a.wait_final(a.multi([leg(wa, theirs, "1.00"), leg(wa, mine, "2.00")]).json()["id"])
    assert sent["status"] == "COMPLETED"
    seen = member.get(f"{API}/transactions/{sent['id']}")
    assert seen.status_code == 200, seen.text
    assert [leg["destination_wallet_id"] for leg in seen.json()["postings"]] == [theirs, mine]
    assert sent["id"] in _ids(member) and sent["id"] in _ids(member, wallet_id=mine)
    assert member.balance(mine) == "2.00"
