"""Transfer references (unique per organization) and list filters by reference and metadata."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, select

from ledger_core.persistence.tables import transactions
from tests.support.api import API, Account, create_wallet, expect_problem, signup, system_wallet
from tests.support.ledger_sql import cancel_transfer

pytestmark = pytest.mark.asyncio

Books = tuple[Account, str, str]


@pytest_asyncio.fixture
async def books(client: TestClient, engine: Engine) -> AsyncIterator[Books]:
    """An organization, its SYSTEM wallet and a PRIMARY wallet; transfers left PENDING by
    the test are cancelled afterwards."""
    admin = await signup(client)
    system = await system_wallet(client, admin.token)
    wallet = await create_wallet(client, admin.token)
    yield admin, system["id"], wallet["id"]
    with engine.connect() as conn:
        pending = conn.scalars(
            select(transactions.c.id).where(
                transactions.c.organization_id == UUID(admin.org["id"]),
                transactions.c.status == "PENDING",
            )
        ).all()
    for tx_id in pending:
        cancel_transfer(engine, tx_id)


async def _transfer(
    client: TestClient, books: Books, *, key: str | None = None, **extra: Any
) -> Any:
    admin, source, destination = books
    body = {
        "source_wallet_id": source,
        "destination_wallet_id": destination,
        "amount": "1.00",
        "currency": "INR",
    } | extra
    headers = admin.headers | {"Idempotency-Key": key or uuid.uuid4().hex}
    return await client.post(f"{API}/transactions/transfer", json=body, headers=headers)


async def _listed(client: TestClient, admin: Account, params: Any) -> list[str]:
    resp = await client.get(f"{API}/transactions", params=params, headers=admin.headers)
    body = await resp.json()
    assert resp.status == 200, body
    return [t["id"] for t in body["data"]]


class TestReference:
    async def test_a_reference_is_stored_and_found(self, client: TestClient, books: Books) -> None:
        resp = await _transfer(client, books, reference="order 1234/A")
        created = await resp.json()
        assert resp.status == 202 and created["reference"] == "order 1234/A"
        await _transfer(client, books, reference="order 1235")
        await _transfer(client, books)
        found = await _listed(client, books[0], {"reference": "order 1234/A"})
        assert found == [created["id"]]

    async def test_a_used_reference_is_409(self, client: TestClient, books: Books) -> None:
        assert (await _transfer(client, books, reference="payout-7")).status == 202
        resp = await _transfer(client, books, reference="payout-7")
        body = await expect_problem(resp, 409, "reference_taken")
        assert body["errors"][0]["field"] == "reference"
        assert len(await _listed(client, books[0], {"reference": "payout-7"})) == 1

    async def test_a_replay_with_its_reference_is_not_a_conflict(
        self, client: TestClient, books: Books
    ) -> None:
        first = await _transfer(client, books, key="k-ref-1", reference="r-1")
        again = await _transfer(client, books, key="k-ref-1", reference="r-1")
        assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert (await again.json())["id"] == (await first.json())["id"]
        other = await _transfer(client, books, key="k-ref-1", reference="r-2")
        await expect_problem(other, 422, "idempotency_key_reused")

    async def test_references_are_unique_per_organization_only(
        self, client: TestClient, books: Books
    ) -> None:
        rival = await signup(client)
        rival_books = (
            rival,
            (await system_wallet(client, rival.token))["id"],
            (await create_wallet(client, rival.token))["id"],
        )
        assert (await _transfer(client, books, reference="shared")).status == 202
        assert (await _transfer(client, rival_books, reference="shared")).status == 202

    async def test_a_bad_reference_is_refused(self, client: TestClient, books: Books) -> None:
        for bad in ("", "x" * 129, "caf\u00e9", "tab\there"):
            await expect_problem(
                await _transfer(client, books, reference=bad), 422, "validation_error"
            )


class TestMetadataFilter:
    async def test_every_pair_must_match(self, client: TestClient, books: Books) -> None:
        both = await (
            await _transfer(client, books, metadata={"order": "1234", "kind": "payout"})
        ).json()
        order = await (await _transfer(client, books, metadata={"order": "1234"})).json()
        await _transfer(client, books, metadata={"order": "999", "kind": "payout"})
        admin = books[0]
        assert await _listed(client, admin, {"metadata[order]": "1234"}) == [
            order["id"],
            both["id"],
        ]
        pairs = [("metadata[order]", "1234"), ("metadata[kind]", "payout")]
        assert await _listed(client, admin, pairs) == [both["id"]]
        assert await _listed(client, admin, {"metadata[order]": "none"}) == []

    async def test_an_unknown_nested_parameter_is_refused(
        self, client: TestClient, books: Books
    ) -> None:
        admin = books[0]
        resp = await client.get(
            f"{API}/transactions", params={"meta[x]": "1"}, headers=admin.headers
        )
        await expect_problem(resp, 422, "validation_error")
        for params in ({"metadata[a\x00]": "1"}, {"metadata[a]": "1\x00"}, {"metadata[]": "1"}):
            resp = await client.get(f"{API}/transactions", params=params, headers=admin.headers)
            await expect_problem(resp, 422, "validation_error")
        repeated = [("metadata[order]", "1"), ("metadata[order]", "2")]
        resp = await client.get(f"{API}/transactions", params=repeated, headers=admin.headers)
        await expect_problem(resp, 422, "validation_error")


class TestWalletMetadata:
    async def test_set_at_creation_replaced_by_patch_and_filtered(
        self, client: TestClient, books: Books
    ) -> None:
        admin = books[0]
        tagged = await create_wallet(client, admin.token, metadata={"desk": "emea", "tier": "1"})
        other = await create_wallet(client, admin.token, metadata={"desk": "apac"})
        assert tagged["metadata"] == {"desk": "emea", "tier": "1"}
        wallets = f"{API}/wallets"
        resp = await client.get(wallets, params={"metadata[desk]": "emea"}, headers=admin.headers)
        assert [w["id"] for w in (await resp.json())["data"]] == [tagged["id"]]
        resp = await client.patch(
            f"{wallets}/{other['id']}", json={"metadata": {"desk": "emea"}}, headers=admin.headers
        )
        assert resp.status == 200 and (await resp.json())["metadata"] == {"desk": "emea"}
        resp = await client.get(wallets, params={"metadata[desk]": "emea"}, headers=admin.headers)
        assert [w["id"] for w in (await resp.json())["data"]] == [other["id"], tagged["id"]]
        pairs = [("metadata[desk]", "emea"), ("metadata[tier]", "1")]
        resp = await client.get(wallets, params=pairs, headers=admin.headers)
        assert [w["id"] for w in (await resp.json())["data"]] == [tagged["id"]]

    async def test_limits_are_those_of_transfers(self, client: TestClient, books: Books) -> None:
        admin, _, wallet_id = books
        too_many = {f"k{n}": "v" for n in range(51)}
        for bad in (too_many, {"": "v"}, {"k": "x" * 501}, {"k": 1}):
            resp = await client.post(
                f"{API}/wallets", json={"type": "PRIMARY", "metadata": bad}, headers=admin.headers
            )
            await expect_problem(resp, 422, "validation_error")
            resp = await client.patch(
                f"{API}/wallets/{wallet_id}", json={"metadata": bad}, headers=admin.headers
            )
            await expect_problem(resp, 422, "validation_error")
        resp = await client.patch(f"{API}/wallets/{wallet_id}", json={}, headers=admin.headers)
        await expect_problem(resp, 422, "validation_error")
