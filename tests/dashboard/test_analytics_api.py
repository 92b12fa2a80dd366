"""The /analytics routes return exact aggregates of a known ledger, per organization."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from ledger_core.persistence.analytics.queries import time_queries
from ledger_core.persistence.tables import reconciliation_discrepancies, reconciliation_runs
from tests.risk.support import drain
from tests.support.api import (
    API,
    Account,
    add_user,
    create_wallet,
    expect_problem,
    signup,
    system_wallet,
)
from tests.support.ledger_sql import cancel_transfer, pending_transfer, post_transfer

pytestmark = pytest.mark.asyncio


async def _get(client: TestClient, account: Account, path: str, **params: str) -> dict[str, Any]:
    resp = await client.get(f"{API}/analytics/{path}", params=params, headers=account.headers)
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


async def _book(client: TestClient, engine: Engine) -> tuple[Account, dict[str, Any], list[Any]]:
    """An INR organization: a deposit of 1000.00, a payment of 100.00, one transfer failed
    for lack of funds, one cancelled, and one still pending."""
    admin = await signup(client)
    system = await system_wallet(client, admin.token)
    a = await create_wallet(client, admin.token, name="Alice")
    b = await create_wallet(client, admin.token, name="Bob")
    post_transfer(engine, system["id"], a["id"], 100_000)
    post_transfer(engine, a["id"], b["id"], 10_000)
    pending_transfer(engine, a["id"], b["id"], 500_000)
    drain(engine)
    cancel_transfer(engine, pending_transfer(engine, b["id"], a["id"], 700))
    waiting = pending_transfer(engine, b["id"], a["id"], 250)
    return admin, {"system": system, "a": a, "b": b}, [waiting]


async def test_aggregates_of_a_known_ledger(client: TestClient, engine: Engine) -> None:
    admin, w, waiting = await _book(client, engine)
    try:
        volume = await _get(client, admin, "volume")
        assert volume["bucket"] == "hour"
        (inr,) = volume["data"]
        assert inr["currency"] == "INR" and 24 <= len(inr["points"]) <= 25
        assert sum(p["count"] for p in inr["points"]) == 4
        assert sum(p["by_status"]["FAILED"] for p in inr["points"]) == 1
        assert sum(p["by_status"]["CANCELLED"] for p in inr["points"]) == 1
        assert sum(float(p["volume"]) for p in inr["points"]) == 1100.0

        statuses = (await _get(client, admin, "statuses"))["data"][0]
        assert statuses["by_status"] == {
            "COMPLETED": {"count": 2, "volume": "1100.00"},
            "FAILED": {"count": 1, "volume": "5000.00"},
            "CANCELLED": {"count": 1, "volume": "7.00"},
        }
        assert statuses["failures"] == [
            {"code": "insufficient_funds", "count": 1, "volume": "5000.00"}
        ]

        today = await _get(client, admin, "top-wallets")
        assert today["day"] == datetime.now(UTC).date().isoformat()
        top = today["data"][0]["wallets"]
        assert [(x["wallet_id"], x["volume"]) for x in top] == [
            (w["a"]["id"], "1100.00"),
            (w["system"]["id"], "1000.00"),
            (w["b"]["id"], "100.00"),
        ]
        assert (top[0]["name"], top[0]["debit_count"], top[0]["credit_volume"]) == (
            "Alice",
            1,
            "1000.00",
        )

        balances = (await _get(client, admin, "balances"))["data"]
        assert balances == [
            {
                "currency": "INR",
                "by_type": {
                    "PRIMARY": {"wallets": 2, "balance": "1000.00"},
                    "SYSTEM": {"wallets": 1, "balance": "-1000.00"},
                },
            }
        ]
        (backlog,) = (await _get(client, admin, "backlog"))["data"]
        assert (backlog["count"], backlog["amount"]) == (1, "2.50")
        assert backlog["oldest_age_s"] >= 0
    finally:
        for tx_id in waiting:
            cancel_transfer(engine, tx_id)


async def test_reconciliation_and_settlements_stay_within_the_organization(
    client: TestClient, engine: Engine
) -> None:
    admin = await signup(client)
    rival = await signup(client, organization_name="Rival")
    before = (await _get(client, admin, "reconciliation"))["run"]
    assert before is None or before["scope"] == "ledger"
    org, other = uuid.UUID(admin.org["id"]), uuid.UUID(rival.org["id"])
    with engine.begin() as conn:
        run = conn.execute(
            reconciliation_runs.insert()
            .values(organization_id=org, status="COMPLETED", wallets_checked=3, entries_checked=9)
            .returning(reconciliation_runs.c.id)
        ).scalar_one()
        conn.execute(
            reconciliation_discrepancies.insert().values(
                run_id=run, organization_id=org, kind="balance_mismatch", expected=1, actual=2
            )
        )
        conn.execute(
            text(
                "INSERT INTO settlements (payer_organization_id, payee_organization_id, currency,"
                " gross_payer_to_payee, gross_payee_to_payer, net_amount, transfer_count)"
                " VALUES (:a, :b, 'INR', 5000, 1000, 4000, 3)"
            ),
            {"a": org, "b": other},
        )
    got = (await _get(client, admin, "reconciliation"))["run"]
    assert (got["id"], got["scope"], got["discrepancy_count"], got["wallets_checked"]) == (
        str(run),
        "organization",
        1,
        3,
    )
    mine = await _get(client, admin, "settlements")
    theirs = await _get(client, rival, "settlements")
    assert [s["net_amount"] for s in mine["recent"]] == ["40.00"]
    assert [s["transfer_count"] for s in theirs["recent"]] == [3]
    rival_run = (await _get(client, rival, "reconciliation"))["run"]
    assert rival_run is None or rival_run["id"] != str(run)


async def test_ranges_roles_and_isolation(client: TestClient, engine: Engine) -> None:
    admin, _, waiting = await _book(client, engine)
    try:
        member = await add_user(client, admin.token)
        rival = await signup(client)
        for path in ("volume", "statuses", "top-wallets", "balances", "backlog", "settlements"):
            resp = await client.get(f"{API}/analytics/{path}", headers=member.headers)
            await expect_problem(resp, 403, "forbidden")
        assert (await _get(client, rival, "statuses"))["data"] == []
        assert (await _get(client, rival, "backlog"))["data"] == []
        assert (await _get(client, rival, "top-wallets"))["data"] == []
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        assert (await _get(client, admin, "top-wallets", day=yesterday))["data"] == []
        for params in ({"day": "0001-01-01"}, {"day": "2026-02-30"}, {"limit": "0"}):
            resp = await client.get(
                f"{API}/analytics/top-wallets", params=params, headers=admin.headers
            )
            await expect_problem(resp, 422, "validation_error")
        now = datetime.now(UTC)
        hour = await _get(
            client,
            admin,
            "volume",
            **{"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()},
        )
        assert hour["bucket"] == "minute" and len(hour["data"][0]["points"]) == 61
        bad = [
            {"from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()},
            {"from": (now - timedelta(days=40)).isoformat()},
            {"from": "2026-01-01T00:00:00"},
            {"from": "0001-01-01T00:00:00Z"},
            {"bucket": "minute", "from": (now - timedelta(days=30)).isoformat()},
            {"bucket": "week"},
        ]
        for params in bad:
            resp = await client.get(f"{API}/analytics/volume", params=params, headers=admin.headers)
            await expect_problem(resp, 422, "validation_error")
    finally:
        for tx_id in waiting:
            cancel_transfer(engine, tx_id)


async def test_time_queries_reports_every_statement(client: TestClient, engine: Engine) -> None:
    admin, _, waiting = await _book(client, engine)
    cancel_transfer(engine, waiting[0])
    with engine.connect() as conn:
        timings = time_queries(conn, uuid.UUID(admin.org["id"]), repeat=1)
    assert set(timings) == {
        "volume",
        "statuses",
        "top_wallets",
        "balances",
        "backlog",
        "reconciliation",
        "positions",
        "settlements",
    }
    assert all(ms >= 0 for ms in timings.values())


async def test_a_cancel_through_the_api_path_is_counted(
    client: TestClient, engine: Engine, database_url: str
) -> None:
    """The gateway's cancel (async) adds the CANCELLED transfer to the rollups too."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from ledger_core.accounts import Principal, Role
    from ledger_core.services.transfers import cancel_found as api_cancel
    from runtime.settings import to_sqlalchemy_url

    admin = await signup(client)
    a = await create_wallet(client, admin.token)
    b = await create_wallet(client, admin.token)
    tx_id = pending_transfer(engine, a["id"], b["id"], 1_234)
    actor = Principal(uuid.UUID(admin.user["id"]), uuid.UUID(admin.org["id"]), Role.ADMIN)
    found = {
        "id": tx_id,
        "organization_id": actor.organization_id,
        "source_user_id": actor.user_id,
        "atomic_group_id": None,
        "status": "PENDING",
    }
    async_engine = create_async_engine(to_sqlalchemy_url(database_url))
    try:
        async with async_engine.begin() as conn:
            await api_cancel(conn, actor, found)
    finally:
        await async_engine.dispose()
    (statuses,) = (await _get(client, admin, "statuses"))["data"]
    assert statuses["by_status"] == {"CANCELLED": {"count": 1, "volume": "12.34"}}


def _top(body: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """(wallet, volume, debits, credits) of each ranked wallet of the only currency."""
    if not body["data"]:
        return []
    (currency,) = body["data"]
    return [
        (x["wallet_id"], x["volume"], x["debit_count"], x["credit_count"])
        for x in currency["wallets"]
    ]


async def test_a_wallets_counts_of_an_earlier_day_move_to_the_rollups_when_it_posts_again(
    client: TestClient, engine: Engine
) -> None:
    """Posting counts a wallet's transfers of the day on its own row; the first batch that
    touches it on a later day moves those counts to `wallet_rollups`, adding them to what
    that day's row already holds, and starts the new day. Every day reads the same before
    and after the move."""
    admin = await signup(client)
    system = await system_wallet(client, admin.token)
    a = await create_wallet(client, admin.token, name="Alice")
    b = await create_wallet(client, admin.token, name="Bob")
    post_transfer(engine, system["id"], a["id"], 100_000)
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    with engine.begin() as conn:  # as if that deposit had been posted yesterday
        conn.execute(
            text(
                "UPDATE wallets SET counts_day = :day"
                " WHERE organization_id = :org AND counts_day IS NOT NULL"
            ),
            {"day": yesterday, "org": admin.org["id"]},
        )
        conn.execute(  # and a capture had counted a debit of 5.00 from Alice yesterday
            text("""
                INSERT INTO wallet_rollups (organization_id, day, wallet_id, currency,
                    debit_count, debit_volume, credit_count, credit_volume)
                VALUES (:org, :day, :wallet, 'INR', 1, 500, 0, 0)
            """),
            {"org": admin.org["id"], "day": yesterday, "wallet": a["id"]},
        )
    before = await _get(client, admin, "top-wallets", day=yesterday.isoformat())
    expected_yesterday = [
        (a["id"], "1005.00", 1, 1),
        (system["id"], "1000.00", 1, 0),
    ]
    assert _top(before) == expected_yesterday
    assert _top(await _get(client, admin, "top-wallets")) == []

    post_transfer(engine, a["id"], b["id"], 10_000)
    idle = await create_wallet(client, admin.token, name="Idle")
    with engine.begin() as conn:  # as a batch stamps a wallet it moved no transfer through
        conn.execute(
            text("UPDATE wallets SET counts_day = :day WHERE id = :id"),
            {
                "day": today,
                "id": idle["id"],
            },
        )

    after = await _get(client, admin, "top-wallets", day=yesterday.isoformat())
    assert _top(after) == expected_yesterday, "the moved counts read as they did"
    assert sorted(_top(await _get(client, admin, "top-wallets"))) == sorted(
        [(a["id"], "100.00", 1, 0), (b["id"], "100.00", 0, 1)]
    )
    with engine.connect() as conn:
        moved = conn.execute(
            text("""
                SELECT wallet_id, debit_count, debit_volume, credit_count, credit_volume
                FROM wallet_rollups WHERE organization_id = :org AND day = :day
            """),
            {"org": admin.org["id"], "day": yesterday},
        ).all()
        rows = conn.execute(
            text("""
                SELECT id, counts_day, day_debit_count, day_credit_count FROM wallets
                WHERE organization_id = :org
            """),
            {"org": admin.org["id"]},
        ).all()
    assert [tuple(r) for r in moved] == [(uuid.UUID(a["id"]), 1, 500, 1, 100_000)]
    by_id = {str(r.id): (r.counts_day, r.day_debit_count, r.day_credit_count) for r in rows}
    assert by_id[a["id"]] == (today, 1, 0)
    assert by_id[b["id"]] == (today, 0, 1)
    assert by_id[system["id"]] == (yesterday, 1, 0), "untouched today: its counts stay put"


async def test_each_currency_ranks_its_own_top_wallets(client: TestClient, engine: Engine) -> None:
    """The ranking is per currency, each cut at `limit`, whatever the other holds."""
    admin = await signup(client)
    inr_system = await system_wallet(client, admin.token)
    usd_system = await create_wallet(client, admin.token, type="SYSTEM", currency="USD")
    inr = [await create_wallet(client, admin.token) for _ in range(3)]
    usd = [await create_wallet(client, admin.token, currency="USD") for _ in range(2)]
    for n, wallet in enumerate(inr, start=1):
        post_transfer(engine, inr_system["id"], wallet["id"], n * 1_000)
    for n, wallet in enumerate(usd, start=1):
        post_transfer(engine, usd_system["id"], wallet["id"], n * 100)

    body = await _get(client, admin, "top-wallets", limit="2")

    ranked = {
        c["currency"]: [(x["wallet_id"], x["volume"]) for x in c["wallets"]] for c in body["data"]
    }
    assert ranked == {
        "INR": [(inr_system["id"], "60.00"), (inr[2]["id"], "30.00")],
        "USD": [(usd_system["id"], "3.00"), (usd[1]["id"], "2.00")],
    }
