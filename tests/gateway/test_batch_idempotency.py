"""A batch's own `Idempotency-Key` works like a single transfer's: replayed, or refused if reused.

Each transfer of a batch carries its own `idempotency_key`; the header, when sent, names
the whole batch: the same batch again answers `200` with what the first stored, another
batch under the key `422 idempotency_key_reused`, and a refused batch leaves the key unused.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, text

from tests.support.api import API, Account, create_wallet, expect_problem, signup, system_wallet

pytestmark = pytest.mark.asyncio


async def _batch(
    client: TestClient, admin: Account, amounts: list[str], key: str | None, **extra: Any
) -> Any:
    source = (await system_wallet(client, admin.token))["id"]
    target = extra.pop("target", None) or (await create_wallet(client, admin.token))["id"]
    body = {
        "transfers": [
            {
                "idempotency_key": f"line-{n}",
                "source_wallet_id": source,
                "destination_wallet_id": target,
                "amount": amount,
                "currency": "INR",
            }
            for n, amount in enumerate(amounts)
        ],
        **extra,
    }
    headers = dict(admin.headers) | ({} if key is None else {"Idempotency-Key": key})
    return await client.post(f"{API}/transactions/batch", json=body, headers=headers), target


def _count(engine: Engine, admin: Account) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM transactions WHERE organization_id = :o"),
                {"o": admin.org["id"]},
            ).scalar_one()
        )


async def test_the_same_batch_under_its_key_is_replayed(client: TestClient, engine: Engine) -> None:
    admin = await signup(client)
    key = f"payroll-{uuid.uuid4()}"
    first, target = await _batch(client, admin, ["1.00", "2.00"], key, atomic=True)
    again, _ = await _batch(client, admin, ["1.00", "2.00"], key, atomic=True, target=target)

    assert first.status == 202, await first.text()
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    ids = [t["id"] for t in (await first.json())["data"]]
    assert [t["id"] for t in (await again.json())["data"]] == ids
    assert [t["amount"] for t in (await again.json())["data"]] == ["1.00", "2.00"]
    assert _count(engine, admin) == 2


@pytest.mark.parametrize(
    ("amounts", "atomic"), [(["1.00", "2.50"], True), (["1.00"], True), (["1.00", "2.00"], False)]
)
async def test_another_batch_under_the_key_is_refused_and_stores_nothing(
    client: TestClient, engine: Engine, amounts: list[str], atomic: bool
) -> None:
    admin = await signup(client)
    key = f"payroll-{uuid.uuid4()}"
    first, target = await _batch(client, admin, ["1.00", "2.00"], key, atomic=True)
    assert first.status == 202
    other = [f"{a[:-1]}9" for a in amounts]  # new item bodies, so item keys cannot replay
    changed, _ = await _batch(client, admin, other, key, atomic=atomic, target=target)

    problem = await expect_problem(changed, 422, "idempotency_key_reused")
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert _count(engine, admin) == 2


async def test_a_refused_batch_leaves_its_key_unused(client: TestClient, engine: Engine) -> None:
    admin = await signup(client)
    key = f"payroll-{uuid.uuid4()}"
    refused, target = await _batch(client, admin, ["1.00", "0.001"], key)
    accepted, _ = await _batch(client, admin, ["1.00", "3.00"], key, target=target)

    await expect_problem(refused, 422, "invalid_amount")
    assert accepted.status == 202, await accepted.text()
    assert _count(engine, admin) == 2


async def test_racing_identical_batches_store_once(client: TestClient, engine: Engine) -> None:
    admin = await signup(client)
    key = f"payroll-{uuid.uuid4()}"
    target = (await create_wallet(client, admin.token))["id"]
    answers = await asyncio.gather(
        *(_batch(client, admin, ["1.00", "2.00"], key, target=target) for _ in range(8))
    )
    statuses = sorted(resp.status for resp, _ in answers)
    bodies = [await resp.json() for resp, _ in answers]

    assert statuses == [200] * 7 + [202]
    assert len({tuple(t["id"] for t in body["data"]) for body in bodies}) == 1
    assert _count(engine, admin) == 2


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "tab\tkey"])
async def test_a_malformed_batch_key_is_refused(client: TestClient, key: str) -> None:
    admin = await signup(client)
    resp, _ = await _batch(client, admin, ["1.00"], key)
    await expect_problem(resp, 400, "invalid_idempotency_key")
