"""The client against the real system: accounts, wallets, money moving, pages, errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.client.conftest import PASSWORD, unique_email
from tests.support.stack import Stack
from vaultcraft.client import ApiError, VaultCraftClient
from vaultcraft.client.types import TransferRequest, Wallet


def _funded(admin: VaultCraftClient, amount: str) -> tuple[Wallet, Wallet]:
    """A PRIMARY wallet holding `amount`, deposited from the org's SYSTEM wallet."""
    [system] = admin.list_wallets(type="SYSTEM")["data"]
    primary = admin.create_wallet("PRIMARY", name="main")
    deposit = admin.transfer(system["id"], primary["id"], Decimal(amount), "INR")
    assert admin.wait_final(deposit["id"], timeout_s=20)["status"] == "COMPLETED"
    return system, primary


def test_signup_login_me_and_organization(stack: Stack) -> None:
    """Signing up keeps the token; login gives a new one; me/organization describe them."""
    email = unique_email()
    with VaultCraftClient(stack.base_url) as client:
        created = client.signup(email, PASSWORD, "Grace Hopper", "Hopper Ltd", "EUR")
        with VaultCraftClient(stack.base_url) as again:
            token = again.login(email, PASSWORD)
            me = again.me()

        assert client.token == created["access_token"]
        assert token["token_type"] == "bearer" and again.token == token["access_token"]
        assert me["email"] == email and me["role"] == "ADMIN"
        assert client.organization()["default_currency"] == "EUR"
        assert me["organization"]["id"] == created["organization"]["id"]


def test_a_transfer_submitted_with_wait_comes_back_decided(admin: VaultCraftClient) -> None:
    _, primary = _funded(admin, "10.00")
    savings = admin.create_wallet("BONUS", "INR")

    posted = admin.transfer(primary["id"], savings["id"], "4.00", "INR", wait_s=10)
    refused = admin.transfer(primary["id"], savings["id"], "6.01", "INR", wait_s=10)

    assert posted["status"] == "COMPLETED" and posted["posted_at"] is not None
    assert (refused["status"], refused["failure_code"]) == ("FAILED", "insufficient_funds")
    assert Decimal(admin.wallet(savings["id"])["balance"]) == Decimal("4.00")


def test_deposit_transfer_and_wait_final(admin: VaultCraftClient) -> None:
    """A deposit from SYSTEM, then a transfer, each waited on with the long poll."""
    system, primary = _funded(admin, "100.00")
    savings = admin.create_wallet("BONUS", "INR")

    submitted = admin.transfer(
        primary["id"], savings["id"], "30.25", "INR", description="rent", metadata={"k": "v"}
    )
    final = admin.wait_final(submitted["id"], timeout_s=20)

    assert submitted["status"] == "PENDING"
    assert final["status"] == "COMPLETED" and final["posted_at"] is not None
    assert final["metadata"] == {"k": "v"} and final["amount"] == "30.25"
    assert Decimal(admin.wallet(primary["id"])["balance"]) == Decimal("69.75")
    assert Decimal(admin.wallet(savings["id"])["balance"]) == Decimal("30.25")
    assert Decimal(admin.wallet(system["id"])["balance"]) == Decimal("-100.00")
    entries = admin.ledger(final["id"])
    debits = sum(Decimal(e["amount"]) for e in entries if e["direction"] == "DEBIT")
    credits = sum(Decimal(e["amount"]) for e in entries if e["direction"] == "CREDIT")
    assert debits == credits == Decimal("30.25")


def test_a_failed_transfer_is_final_with_its_code(admin: VaultCraftClient) -> None:
    """wait_final also returns FAILED transfers, with their failure code."""
    _, primary = _funded(admin, "5.00")
    other = admin.create_wallet("BONUS")

    final = admin.wait_final(admin.transfer(primary["id"], other["id"], "6", "INR")["id"])

    assert (final["status"], final["failure_code"]) == ("FAILED", "insufficient_funds")


def test_pages_and_iterators_cover_every_item_once(admin: VaultCraftClient) -> None:
    """list_* gives one page and its cursor; iter_* walks every page."""
    _, primary = _funded(admin, "10.00")
    other = admin.create_wallet("BONUS")
    ids = {admin.transfer(primary["id"], other["id"], "1", "INR")["id"] for _ in range(5)}

    first = admin.list_transactions(limit=2, wallet_id=other["id"])
    second = admin.list_transactions(limit=2, wallet_id=other["id"], cursor=first["next_cursor"])
    walked = [t["id"] for t in admin.iter_transactions(wallet_id=other["id"], limit="2")]

    assert len(first["data"]) == 2 and first["next_cursor"]
    assert {t["id"] for t in first["data"]}.isdisjoint(t["id"] for t in second["data"])
    assert sorted(walked) == sorted(ids)
    assert {admin.wait_final(i)["status"] for i in ids} == {"COMPLETED"}
    statement = [e["balance_after"] for e in admin.iter_entries(primary["id"], limit="2")]
    assert statement == ["10.00", "9.00", "8.00", "7.00", "6.00", "5.00"]


def test_problems_raise_api_error_with_code_status_and_fields(admin: VaultCraftClient) -> None:
    """A 422 names the field; another organization's wallet is 404 not_found."""
    _, primary = _funded(admin, "1.00")
    other = admin.create_wallet("BONUS")

    with pytest.raises(ApiError) as invalid:
        admin.transfer(primary["id"], other["id"], "1.001", "INR")
    with pytest.raises(ApiError) as missing:
        admin.wallet("00000000-0000-0000-0000-000000000000")

    assert (invalid.value.status, invalid.value.code) == (422, "invalid_amount")
    assert [e["field"] for e in invalid.value.errors] == ["amount"]
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert missing.value.request_id


def test_floats_are_refused_before_anything_is_sent(admin: VaultCraftClient) -> None:
    """Money is never a float: the client refuses one instead of rounding it."""
    with pytest.raises(TypeError):
        admin.transfer("a", "b", 0.1, "INR")  # type: ignore[arg-type]


def test_cancel_and_reverse(admin: VaultCraftClient) -> None:
    """A completed transfer is not cancellable; reversing it brings the money back."""
    _, primary = _funded(admin, "20.00")
    other = admin.create_wallet("BONUS")
    done = admin.wait_final(admin.transfer(primary["id"], other["id"], "8", "INR")["id"])

    with pytest.raises(ApiError) as refused:
        admin.cancel(done["id"])
    reversal = admin.reverse(done["id"], Decimal("3"), wait_s=10)

    assert refused.value.code == "not_cancellable"
    assert reversal["status"] == "COMPLETED"
    assert reversal["reverses_transaction_id"] == done["id"]
    assert admin.wallet(other["id"])["balance"] == "5.00"


def test_batch_posts_every_transfer(admin: VaultCraftClient) -> None:
    """A batch gets a key per transfer and posts them all; the answer waits for them."""
    _, primary = _funded(admin, "9.00")
    other = admin.create_wallet("BONUS")
    leg: TransferRequest = {
        "source_wallet_id": primary["id"],
        "destination_wallet_id": other["id"],
        "amount": "2",
        "currency": "INR",
    }

    batch = admin.transfer_batch([leg] * 3, atomic=True, wait_s=10)

    assert len({t["idempotency_key"] for t in batch}) == 3
    assert [t["status"] for t in batch] == ["COMPLETED"] * 3
    assert admin.wallet(other["id"])["balance"] == "6.00"


def test_operator_routes(admin: VaultCraftClient, stack: Stack) -> None:
    """Users, wallet status, summary, counterparties, settlements, reconciliation, audit."""
    with VaultCraftClient(stack.base_url) as rival:
        rival_org = rival.signup(unique_email("rival"), PASSWORD, "Rival", "Rival Org")
    member = admin.create_user(unique_email("member"), PASSWORD, "Mem Ber", "MEMBER")
    wallet = admin.create_wallet("PRIMARY", user_id=member["id"])

    locked = admin.set_wallet_status(wallet["id"], "LOCKED")
    counterparty = admin.add_counterparty(rival_org["organization"]["id"])
    run = admin.request_reconciliation()

    assert locked["status"] == "LOCKED"
    assert member["id"] in {u["id"] for u in admin.iter_users()}
    assert admin.wallet_summary()["data"][0]["currency"] == "INR"
    assert admin.list_counterparties()["data"] == [counterparty]
    admin.remove_counterparty(counterparty["organization_id"])
    assert admin.list_counterparties()["data"] == []
    assert admin.run_settlements()["status"] == "COMPLETED"
    assert admin.list_settlements()["data"] == []
    assert run["id"] in {r["id"] for r in admin.list_reconciliations()["data"]}
    assert admin.reconciliation(run["id"])["id"] == run["id"]
    actions = {log["action"] for log in admin.iter_audit_logs()}
    assert {"wallet.status_changed", "user.created"} <= actions
    assert admin.verify_audit_chain()["records_checked"] >= 0


def test_hold_capture_void_and_legs(admin: VaultCraftClient) -> None:
    """A hold reserves funds; capture posts part of it; void releases; legs post together."""
    system, primary = _funded(admin, "100.00")
    other = admin.create_wallet("PRIMARY", name="other")
    held = admin.hold(primary["id"], other["id"], Decimal("40.00"), "INR", expires_in_s=600)
    assert admin.transaction(held["id"], wait_s=20)["status"] == "HELD"
    assert admin.wallet(primary["id"])["held"] == "40.00"
    captured = admin.capture(held["id"], Decimal("15.00"))
    assert (captured["status"], captured["amount"]) == ("COMPLETED", "15.00")
    with pytest.raises(ApiError) as refused:
        admin.void(held["id"])
    assert refused.value.code == "not_held"
    second = admin.hold(primary["id"], other["id"], Decimal("5.00"), "INR")
    assert admin.transaction(second["id"], wait_s=20)["status"] == "HELD"
    assert admin.void(second["id"])["status"] == "VOIDED"
    multi = admin.transfer_legs(
        [
            {
                "source_wallet_id": primary["id"],
                "destination_wallet_id": other["id"],
                "amount": "10.00",
                "currency": "INR",
            },
            {
                "source_wallet_id": system["id"],
                "destination_wallet_id": other["id"],
                "amount": "1.00",
                "currency": "INR",
            },
        ],
        wait_s=20,
    )
    assert multi["kind"] == "MULTI" and len(multi["postings"] or []) == 2
    assert multi["status"] == "COMPLETED"
    assert admin.wallet(primary["id"])["balance"] == "75.00"
    assert len(admin.ledger(multi["id"])) == 4
