"""Wallet routes: who may open what, listing, status changes with events, and the summary."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, select

from ledger_core.persistence.tables import audit_logs, outbox
from tests.support.api import (
    API,
    add_user,
    create_wallet,
    expect_problem,
    signup,
    system_wallet,
)
from tests.support.ledger_sql import cancel_transfer, pending_transfer, post_transfer

pytestmark = pytest.mark.asyncio

WALLET_FIELDS = {
    "id",
    "organization_id",
    "user_id",
    "type",
    "currency",
    "status",
    "balance",
    "available_balance",
    "held",
    "overdraft_limit",
    "name",
    "metadata",
    "created_at",
    "updated_at",
}


@pytest.fixture
def pending(engine: Engine) -> Iterator[list[UUID]]:
    """PENDING transfers a test creates; cancelled afterwards so nothing stays pending."""
    created: list[UUID] = []
    yield created
    for tx_id in created:
        cancel_transfer(engine, tx_id)


class TestCreate:
    async def test_member_opens_own_wallets(self, client: TestClient, engine: Engine) -> None:
        admin = await signup(client)
        member = await add_user(client, admin.token)
        wallet = await create_wallet(client, member.token, type="BONUS", name="Rewards")
        assert set(wallet) == WALLET_FIELDS
        assert wallet["user_id"] == member.user["id"]
        assert wallet["currency"] == "INR" and wallet["status"] == "ACTIVE"
        assert wallet["balance"] == wallet["available_balance"] == "0.00"
        assert wallet["name"] == "Rewards"
        assert wallet["created_at"].endswith("Z")
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit_logs).where(
                    audit_logs.c.action == "wallet.created",
                    audit_logs.c.resource_id == wallet["id"],
                )
            ).all()
        assert len(rows) == 1 and str(rows[0].actor_id) == member.user["id"]

    async def test_currency_follows_iso_4217(self, client: TestClient) -> None:
        admin = await signup(client)
        jpy = await create_wallet(client, admin.token, currency="JPY")
        assert jpy["balance"] == "0"
        for bad in ("XXX", "ABC", "usd", "US", 840):
            resp = await client.post(
                f"{API}/wallets", json={"type": "PRIMARY", "currency": bad}, headers=admin.headers
            )
            await expect_problem(resp, 422, "invalid_currency")

    async def test_admin_opens_wallets_for_members(self, client: TestClient) -> None:
        admin = await signup(client)
        member = await add_user(client, admin.token)
        wallet = await create_wallet(client, admin.token, user_id=member.user["id"])
        assert wallet["user_id"] == member.user["id"]
        resp = await client.post(
            f"{API}/wallets",
            json={"type": "PRIMARY", "user_id": str(uuid.uuid4())},
            headers=admin.headers,
        )
        await expect_problem(resp, 404, "not_found")

    async def test_member_cannot_open_for_others_or_system(self, client: TestClient) -> None:
        admin = await signup(client)
        member = await add_user(client, admin.token)
        for body in (
            {"type": "PRIMARY", "user_id": admin.user["id"]},
            {"type": "PRIMARY", "user_id": str(uuid.uuid4())},
            {"type": "SYSTEM", "currency": "USD"},
        ):
            resp = await client.post(f"{API}/wallets", json=body, headers=member.headers)
            await expect_problem(resp, 403, "forbidden")

    async def test_one_system_wallet_per_currency(self, client: TestClient) -> None:
        admin = await signup(client)
        resp = await client.post(
            f"{API}/wallets", json={"type": "SYSTEM", "currency": "INR"}, headers=admin.headers
        )
        await expect_problem(resp, 409, "system_wallet_exists")
        usd = await create_wallet(client, admin.token, type="SYSTEM", currency="USD")
        assert usd["user_id"] is None
        resp = await client.post(
            f"{API}/wallets",
            json={"type": "SYSTEM", "currency": "EUR", "user_id": admin.user["id"]},
            headers=admin.headers,
        )
        await expect_problem(resp, 422, "invalid_request")

    async def test_clearing_and_unknown_types_are_refused(self, client: TestClient) -> None:
        admin = await signup(client)
        for body in ({"type": "CLEARING"}, {"type": "primary"}, {"type": 1}, {}):
            resp = await client.post(f"{API}/wallets", json=body, headers=admin.headers)
            problem = await expect_problem(resp, 422, "validation_error")
            assert problem["errors"][0]["field"] == "type"


class TestRead:
    async def test_member_sees_own_admin_sees_all(self, client: TestClient) -> None:
        admin = await signup(client)
        alice = await add_user(client, admin.token)
        bob = await add_user(client, admin.token)
        a1 = await create_wallet(client, alice.token)
        b1 = await create_wallet(client, bob.token)
        mine = await (await client.get(f"{API}/wallets", headers=alice.headers)).json()
        assert [w["id"] for w in mine["data"]] == [a1["id"]]
        # A member's user_id filter cannot widen what they see.
        resp = await client.get(
            f"{API}/wallets", params={"user_id": bob.user["id"]}, headers=alice.headers
        )
        assert (await resp.json())["data"] == []
        everything = await (await client.get(f"{API}/wallets", headers=admin.headers)).json()
        assert {w["id"] for w in everything["data"]} >= {a1["id"], b1["id"]}
        assert (await client.get(f"{API}/wallets/{a1['id']}", headers=alice.headers)).status == 200
        assert (await client.get(f"{API}/wallets/{a1['id']}", headers=admin.headers)).status == 200
        resp = await client.get(f"{API}/wallets/{b1['id']}", headers=alice.headers)
        await expect_problem(resp, 403, "forbidden")
        system = await system_wallet(client, admin.token)
        resp = await client.get(f"{API}/wallets/{system['id']}", headers=alice.headers)
        await expect_problem(resp, 403, "forbidden")
        resp = await client.get(f"{API}/wallets/{uuid.uuid4()}", headers=admin.headers)
        await expect_problem(resp, 404, "not_found")

    async def test_filters(self, client: TestClient) -> None:
        admin = await signup(client)
        member = await add_user(client, admin.token)
        bonus = await create_wallet(client, member.token, type="BONUS", currency="USD")
        await create_wallet(client, member.token, type="PRIMARY")
        cases = [
            ({"type": "BONUS"}, [bonus["id"]]),
            ({"currency": "USD"}, [bonus["id"]]),
            ({"type": "BONUS", "currency": "INR"}, []),
            ({"user_id": member.user["id"], "type": "BONUS", "status": "ACTIVE"}, [bonus["id"]]),
            ({"status": "LOCKED"}, []),
        ]
        for params, expected in cases:
            resp = await client.get(f"{API}/wallets", params=params, headers=admin.headers)
            assert [w["id"] for w in (await resp.json())["data"]] == expected, params
        for params, code in (
            ({"type": "CHECKING"}, "validation_error"),
            ({"status": "active"}, "validation_error"),
            ({"currency": "ZZZ"}, "invalid_currency"),
            ({"user_id": "42"}, "validation_error"),
            ({"colour": "red"}, "validation_error"),
        ):
            resp = await client.get(f"{API}/wallets", params=params, headers=admin.headers)
            await expect_problem(resp, 422, code)

    async def test_cursor_pagination_newest_first(self, client: TestClient) -> None:
        admin = await signup(client)
        made = [(await create_wallet(client, admin.token))["id"] for _ in range(5)]
        system = await system_wallet(client, admin.token)
        expected = [*reversed(made), system["id"]]
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = await (
                await client.get(f"{API}/wallets", params=params, headers=admin.headers)
            ).json()
            assert len(page["data"]) <= 2
            seen += [w["id"] for w in page["data"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected and pages == 3
        for params in (
            {"limit": "0"},
            {"limit": "201"},
            {"limit": "ten"},
        ):
            resp = await client.get(f"{API}/wallets", params=params, headers=admin.headers)
            await expect_problem(resp, 422, "validation_error")
        for params in (
            {"cursor": "garbage!"},
            {"cursor": "MjAyNnxxfDE"},
            {"limit": "2", "cursor": "a" * 300},
        ):
            resp = await client.get(f"{API}/wallets", params=params, headers=admin.headers)
            await expect_problem(resp, 400, "invalid_cursor")

    async def test_available_balance_subtracts_pending_outgoing(
        self, client: TestClient, engine: Engine, pending: list[UUID]
    ) -> None:
        admin = await signup(client)
        system = await system_wallet(client, admin.token)
        wallet = await create_wallet(client, admin.token)
        other = await create_wallet(client, admin.token)
        post_transfer(engine, system["id"], wallet["id"], 12_550)
        pending.append(pending_transfer(engine, wallet["id"], other["id"], 2_500))
        body = await (
            await client.get(f"{API}/wallets/{wallet['id']}", headers=admin.headers)
        ).json()
        assert body["balance"] == "125.50"
        assert body["available_balance"] == "100.50"
        sys_body = await (
            await client.get(f"{API}/wallets/{system['id']}", headers=admin.headers)
        ).json()
        assert sys_body["balance"] == "-125.50"

    async def test_every_leg_of_a_pending_multi_counts_in_available_balance(
        self, client: TestClient, engine: Engine, pending: list[UUID]
    ) -> None:
        admin = await signup(client)
        system = await system_wallet(client, admin.token)
        wallet = await create_wallet(client, admin.token)
        x, y = await create_wallet(client, admin.token), await create_wallet(client, admin.token)
        post_transfer(engine, system["id"], wallet["id"], 10_000)
        legs = [
            {
                "source_wallet_id": wallet["id"],
                "destination_wallet_id": dst,
                "amount": amount,
                "currency": wallet["currency"],
            }
            for dst, amount in ((x["id"], "10.00"), (y["id"], "25.00"), (x["id"], "5.00"))
        ]
        resp = await client.post(
            f"{API}/transactions",
            json={"postings": legs},
            headers={**admin.headers, "Idempotency-Key": "multi-available"},
        )
        assert resp.status == 202, await resp.text()
        pending.append(UUID((await resp.json())["id"]))
        body = await (
            await client.get(f"{API}/wallets/{wallet['id']}", headers=admin.headers)
        ).json()
        assert (body["balance"], body["available_balance"]) == ("100.00", "60.00")
        listed = await (
            await client.get(
                f"{API}/transactions", params={"wallet_id": y["id"]}, headers=admin.headers
            )
        ).json()
        assert [t["id"] for t in listed["data"]] == [str(pending[-1])]

    async def test_a_member_sees_a_multi_leg_transaction_by_any_of_its_legs(
        self, client: TestClient, engine: Engine, pending: list[UUID]
    ) -> None:
        """A member whose wallet is only in a later leg reads and lists the transaction;
        a member in no leg does neither."""
        admin = await signup(client)
        payee, stranger = await add_user(client, admin.token), await add_user(client, admin.token)
        system = await system_wallet(client, admin.token)
        source, fee = (
            await create_wallet(client, admin.token),
            await create_wallet(client, admin.token),
        )
        theirs = await create_wallet(client, payee.token)
        await create_wallet(client, stranger.token)
        post_transfer(engine, system["id"], source["id"], 10_000)
        legs = [
            {
                "source_wallet_id": source["id"],
                "destination_wallet_id": dst,
                "amount": "1.00",
                "currency": source["currency"],
            }
            for dst in (fee["id"], theirs["id"])
        ]
        resp = await client.post(
            f"{API}/transactions",
            json={"postings": legs},
            headers={**admin.headers, "Idempotency-Key": "multi-member"},
        )
        assert resp.status == 202, await resp.text()
        multi = (await resp.json())["id"]
        pending.append(UUID(multi))
        read = await client.get(f"{API}/transactions/{multi}", headers=payee.headers)
        assert read.status == 200, await read.text()
        listed = await (await client.get(f"{API}/transactions", headers=payee.headers)).json()
        assert [t["id"] for t in listed["data"]] == [multi]
        await expect_problem(
            await client.get(f"{API}/transactions/{multi}", headers=stranger.headers),
            403,
            "forbidden",
        )
        unseen = await (await client.get(f"{API}/transactions", headers=stranger.headers)).json()
        assert unseen["data"] == []


class TestStatus:
    async def _events(self, engine: Engine, wallet_id: str) -> list[dict[str, object]]:
        with engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.type, outbox.c.data, outbox.c.organization_id)
                .where(outbox.c.data["id"].astext == wallet_id)
                .order_by(outbox.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    async def test_lock_unlock_close_with_events(self, client: TestClient, engine: Engine) -> None:
        admin = await signup(client)
        wallet = await create_wallet(client, admin.token)
        url = f"{API}/wallets/{wallet['id']}"
        for status in ("LOCKED", "ACTIVE", "LOCKED", "CLOSED"):
            resp = await client.patch(url, json={"status": status}, headers=admin.headers)
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["status"] == status
        events = await self._events(engine, wallet["id"])
        assert [e["data"]["status"] for e in events] == ["LOCKED", "ACTIVE", "LOCKED", "CLOSED"]
        assert {e["type"] for e in events} == {"wallet.status_changed"}
        assert str(events[0]["organization_id"]) == admin.org["id"]
        assert set(events[0]["data"]) == WALLET_FIELDS
        for status in ("ACTIVE", "LOCKED"):
            resp = await client.patch(url, json={"status": status}, headers=admin.headers)
            await expect_problem(resp, 409, "invalid_status_transition")
        # Asking for the status a wallet already has changes nothing and emits nothing.
        resp = await client.patch(url, json={"status": "CLOSED"}, headers=admin.headers)
        assert resp.status == 200
        assert len(await self._events(engine, wallet["id"])) == 4
        with engine.connect() as conn:
            audited = (
                conn.execute(
                    select(audit_logs.c.details)
                    .where(
                        audit_logs.c.action == "wallet.status_changed",
                        audit_logs.c.resource_id == wallet["id"],
                    )
                    .order_by(audit_logs.c.id)
                )
                .scalars()
                .all()
            )
        assert audited[-1] == {"from": "LOCKED", "to": "CLOSED"}

    async def test_close_needs_zero_balance(self, client: TestClient, engine: Engine) -> None:
        admin = await signup(client)
        system = await system_wallet(client, admin.token)
        wallet = await create_wallet(client, admin.token)
        post_transfer(engine, system["id"], wallet["id"], 100)
        url = f"{API}/wallets/{wallet['id']}"
        resp = await client.patch(url, json={"status": "CLOSED"}, headers=admin.headers)
        await expect_problem(resp, 409, "wallet_not_empty")
        post_transfer(engine, wallet["id"], system["id"], 100)
        resp = await client.patch(url, json={"status": "CLOSED"}, headers=admin.headers)
        assert resp.status == 200

    async def test_close_needs_no_pending_transfer(
        self, client: TestClient, engine: Engine, pending: list[UUID]
    ) -> None:
        admin = await signup(client)
        source = await create_wallet(client, admin.token)
        target = await create_wallet(client, admin.token)
        tx_id = pending_transfer(engine, source["id"], target["id"], 100)
        pending.append(tx_id)
        for wallet in (source, target):
            resp = await client.patch(
                f"{API}/wallets/{wallet['id']}", json={"status": "CLOSED"}, headers=admin.headers
            )
            await expect_problem(resp, 409, "wallet_not_empty")
        cancel_transfer(engine, tx_id)
        resp = await client.patch(
            f"{API}/wallets/{target['id']}", json={"status": "CLOSED"}, headers=admin.headers
        )
        assert resp.status == 200

    async def test_only_admins_change_status(self, client: TestClient) -> None:
        admin = await signup(client)
        member = await add_user(client, admin.token)
        wallet = await create_wallet(client, member.token)
        resp = await client.patch(
            f"{API}/wallets/{wallet['id']}", json={"status": "LOCKED"}, headers=member.headers
        )
        await expect_problem(resp, 403, "forbidden")

    async def test_bad_status_bodies(self, client: TestClient) -> None:
        admin = await signup(client)
        wallet = await create_wallet(client, admin.token)
        url = f"{API}/wallets/{wallet['id']}"
        for body in ({"status": "FROZEN"}, {"status": None}, {}, {"status": "LOCKED", "x": 1}):
            resp = await client.patch(url, json=body, headers=admin.headers)
            await expect_problem(resp, 422, "validation_error")


class TestSummary:
    async def test_summary_per_currency(
        self, client: TestClient, engine: Engine, pending: list[UUID]
    ) -> None:
        admin = await signup(client)
        member = await add_user(client, admin.token)
        system = await system_wallet(client, admin.token)
        wallet = await create_wallet(client, member.token)
        bonus = await create_wallet(client, member.token, type="BONUS")
        await create_wallet(client, admin.token, type="SYSTEM", currency="USD")
        post_transfer(engine, system["id"], wallet["id"], 10_000)
        post_transfer(engine, system["id"], bonus["id"], 250)
        pending.append(pending_transfer(engine, wallet["id"], bonus["id"], 1_000))
        resp = await client.get(f"{API}/wallets/summary", headers=admin.headers)
        assert resp.status == 200
        data = (await resp.json())["data"]
        assert [c["currency"] for c in data] == ["INR", "USD"]
        inr = data[0]
        assert inr["balance_by_type"] == {
            "PRIMARY": "100.00",
            "BONUS": "2.50",
            "SYSTEM": "-102.50",
            "CLEARING": "0.00",
        }
        assert inr["wallets_by_status"] == {"ACTIVE": 3, "LOCKED": 0, "CLOSED": 0}
        assert inr["transfers_by_status"]["COMPLETED"] == {"count": 2, "volume": "102.50"}
        assert inr["transfers_by_status"]["PENDING"] == {"count": 1, "volume": "10.00"}
        assert data[1]["wallets_by_status"]["ACTIVE"] == 1
        resp = await client.get(f"{API}/wallets/summary", headers=member.headers)
        await expect_problem(resp, 403, "forbidden")
