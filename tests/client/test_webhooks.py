"""Signature checks on a real delivery, and on tampered copies of it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.events.receiver import Received, Receiver
from tests.support.stack import Stack
from vaultcraft.client import InvalidSignature, VaultCraftClient, parse_event, verify_signature


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _first_delivery(receiver: Receiver, path: str, timeout_s: float = 30) -> Received:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if got := receiver.received(path):
            return got[0]
        time.sleep(0.05)
    raise AssertionError("no delivery arrived")


def test_a_real_delivery_verifies_and_tampered_ones_do_not(
    stack: Stack, admin: VaultCraftClient, receiver: Receiver
) -> None:
    """The event VaultCraft signed checks out; another body, time or secret does not."""
    hook = admin.create_webhook(receiver.url("/hooks"), ["transfer.completed"])
    [system] = admin.list_wallets(type="SYSTEM")["data"]
    wallet = admin.create_wallet("PRIMARY")
    tx = admin.wait_final(admin.transfer(system["id"], wallet["id"], "4.00", "INR")["id"])

    delivery = _first_delivery(receiver, "/hooks")
    event = parse_event(hook["secret"], delivery.headers, delivery.body)

    assert event["type"] == "transfer.completed" and event["data"]["id"] == tx["id"]
    header = delivery.headers["VaultCraft-Signature"]
    signed_at = int(header.split(",")[0].removeprefix("t="))
    tampered = delivery.body.replace(b"4.00", b"9.00")
    assert tampered != delivery.body
    assert not verify_signature(hook["secret"], header, tampered)
    assert not verify_signature("whsec_wrong", header, delivery.body)
    assert not verify_signature(hook["secret"], header, delivery.body, now=signed_at + 301)
    assert verify_signature(hook["secret"], header, delivery.body, now=signed_at + 299)
    assert not verify_signature(
        hook["secret"], header.replace(f"t={signed_at}", f"t={signed_at + 1}"), delivery.body
    )
    with pytest.raises(InvalidSignature):
        parse_event(hook["secret"], delivery.headers, tampered)
    with pytest.raises(InvalidSignature):
        parse_event(hook["secret"], {}, delivery.body)
    other_id = {**delivery.headers, "VaultCraft-Event-Id": "not-this-event"}
    with pytest.raises(InvalidSignature):
        parse_event(hook["secret"], other_id, delivery.body)

    deliveries = admin.list_deliveries(hook["id"])["data"]
    assert [d["event_id"] for d in deliveries] == [event["id"]]
    again = admin.redeliver(event["id"])
    assert again["event_id"] == event["id"]
    assert json.loads(delivery.body)["id"] == event["id"]
    assert [w["id"] for w in admin.list_webhooks()["data"]] == [hook["id"]]
    admin.delete_webhook(hook["id"])
    assert admin.list_webhooks()["data"] == []
