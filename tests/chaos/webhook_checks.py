"""Webhooks in the chaos run: who subscribes, how fast retries go, and what is checked.

The first organizations subscribe to the final transfer events before the faults begin
(a registration whose answer was lost would be made twice, leaving a webhook whose secret
nobody knows). Afterwards, from the database: every `transfer.*` event of a subscribed
organization reached its receiver (at least once, with a good signature), and no delivery
ran out of attempts, since every receiver outage is shorter than the retry schedule.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, Engine, text

from tests.chaos.client import RetryingClient, Tally
from tests.chaos.receiver import HookReceiver
from tests.chaos.workload import API, Org

TIMEOUT_MS = 1000
MAX_ATTEMPTS = 14
BACKOFF_BASE_MS = 250
BACKOFF_MAX_MS = 3000

WEBHOOK_ENV = {
    "VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS": "1",  # the receiver listens on loopback
    "VAULTCRAFT_WEBHOOK_TIMEOUT_MS": str(TIMEOUT_MS),
    "VAULTCRAFT_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "VAULTCRAFT_WEBHOOK_BACKOFF_BASE_MS": str(BACKOFF_BASE_MS),
    "VAULTCRAFT_WEBHOOK_BACKOFF_MAX_MS": str(BACKOFF_MAX_MS),
    "VAULTCRAFT_WEBHOOK_RESCUE_AFTER_S": "2",
    "VAULTCRAFT_OUTBOX_LEASE_S": "2",
}
EVENTS = ["transfer.completed", "transfer.failed", "transfer.cancelled"]


def shortest_retry_span_s() -> float:
    """The least time a delivery keeps retrying (every jitter at its lowest).

    The longest receiver outage must fit in it with room to spare (the run asserts three
    times over: a webhook worker with a backlog makes each attempt late, and outages are
    at least `faults.RECEIVER_REST_S` apart), or a delivery could fail for good during a
    brief outage.
    """
    span_ms = 0.0
    for failed in range(1, MAX_ATTEMPTS):
        span_ms += min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failed - 1)) / 2
    return span_ms / 1000


def subscribe(base_url: str, tally: Tally, orgs: list[Org], receiver: HookReceiver) -> None:
    """Register one webhook per organization, its secret handed to the receiver."""
    client = RetryingClient(base_url, tally)
    try:
        for org in orgs:
            resp = client.call(
                "POST",
                f"{API}/webhooks",
                token=org.token,
                json={"url": receiver.url(org.organization_id), "events": EVENTS},
            )
            assert resp.status_code == 201, resp.text
            receiver.expect(org.organization_id, str(resp.json()["secret"]))
    finally:
        client.close()


_UNSETTLED = text("""
    SELECT (SELECT count(*) FROM outbox WHERE id > (SELECT position FROM outbox_relay_cursor))
         + (SELECT count(*) FROM webhook_deliveries WHERE status = 'PENDING')
""")

_SUBSCRIBED_EVENTS = text("""
    SELECT organization_id::text, event_id::text FROM outbox
    WHERE type = ANY(:types) AND organization_id = ANY(CAST(:orgs AS uuid[]))
""")

_FAILED = text("""
    SELECT d.event_id, d.attempts, d.last_error FROM webhook_deliveries d
    WHERE d.status = 'FAILED' ORDER BY d.updated_at
""")


def wait_settled(engine: Engine, timeout_s: float) -> int:
    """Wait until every event is relayed and no delivery is PENDING (the retries are
    done); returns how many were still unfinished when the time ran out (0: done)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as conn:
            left = int(conn.execute(_UNSETTLED).scalar_one())
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def undelivered(conn: Connection, receiver: HookReceiver, orgs: list[str]) -> list[str]:
    """Final-transfer events of subscribed organizations their receiver never accepted."""
    rows = conn.execute(_SUBSCRIBED_EVENTS, {"types": EVENTS, "orgs": orgs}).all()
    return [f"{org}: {event}" for org, event in rows if event not in receiver.delivered[org]]


def subscribed_event_count(conn: Connection, orgs: list[str]) -> int:
    return len(conn.execute(_SUBSCRIBED_EVENTS, {"types": EVENTS, "orgs": orgs}).all())


def failed_deliveries(conn: Connection) -> list[str]:
    return [
        f"event {event} after {attempts} attempts: {error}"
        for event, attempts, error in conn.execute(_FAILED)
    ]
