"""The webhook delivery actor: one signed POST per message, retried with backoff.

Runs in the `webhooks` queue, which `vaultcraft run` gives its own worker process
(`webhooks: vaultcraft worker --queues webhooks`), so receivers that are slow or down
only ever hold webhook threads, never posting.

Each message is one attempt of one delivery. The attempt is claimed in a short
transaction (see `ledger_core.persistence.events.deliveries`), the POST is made with no lock
held, and the outcome is recorded in a second transaction. A failed attempt schedules the
next with a delayed message and records when it is due; if that message is lost, the
relay's `dispatch_due_deliveries` sends it again from PostgreSQL.

The host is resolved and checked again right before each POST, and the request goes to
the checked address (the URL's host travels in `Host` and TLS SNI), so DNS that changed
since the webhook was registered cannot point a delivery at a private address.
"""

from __future__ import annotations

import logging
import ssl
import time
from functools import cache
from uuid import UUID

import httpx
from dramatiq import Broker

from ledger_core.persistence.events.deliveries import (
    AttemptPlan,
    AttemptResult,
    finish_attempt,
    start_attempt,
)
from ledger_core.ssrf import WebhookUrlNotAllowed, resolve_target
from ledger_core.webhooks import (
    ATTEMPT_HEADER,
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    RetryPolicy,
    sign,
)
from runtime import metrics
from runtime.settings import Settings
from workers import db
from workers.webhook_queue import send_attempt

log = logging.getLogger("vaultcraft.webhooks")

USER_AGENT = "VaultCraft-Webhooks/1.0"
ERROR_TEXT_LIMIT = 500


@cache
def tls() -> ssl.SSLContext:
    """One TLS context for every attempt, made on first use: building one loads the CA
    bundle (~40 ms of CPU), which would otherwise cap a worker process at a few dozen
    attempts a second."""
    return httpx.create_ssl_context()


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.webhook_max_attempts,
        base_ms=settings.webhook_backoff_base_ms,
        max_ms=max(settings.webhook_backoff_base_ms, settings.webhook_backoff_max_ms),
    )


def post_event(plan: AttemptPlan, *, allow_private: bool, timeout_s: float) -> AttemptResult:
    """POST the event once; never raises for anything the receiver or network does."""
    started = time.perf_counter()

    def result(status_code: int | None, error: str | None) -> AttemptResult:
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        return AttemptResult(status_code, error and error[:ERROR_TEXT_LIMIT], elapsed_ms)

    try:
        target = resolve_target(plan.url, allow_private=allow_private)
    except WebhookUrlNotAllowed as exc:
        return result(None, f"{exc.code}: {exc.detail}")
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(plan.secret, plan.body),
        EVENT_ID_HEADER: str(plan.event_id),
        EVENT_TYPE_HEADER: plan.event_type,
        DELIVERY_ID_HEADER: str(plan.delivery_id),
        ATTEMPT_HEADER: str(plan.attempt),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        # A client per attempt: connections are never shared between hostnames that
        # happen to resolve to one address. Redirects are not followed (they could
        # lead anywhere, including inside), and the response body is never read.
        with (
            httpx.Client(
                timeout=timeout_s, follow_redirects=False, trust_env=False, verify=tls()
            ) as client,
            client.stream(
                "POST",
                target.pinned_url,
                content=plan.body,
                headers=headers,
                extensions=extensions,
            ) as response,
        ):
            code = response.status_code
    except httpx.TimeoutException:
        return result(None, f"timed out after {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return result(None, f"{type(exc).__name__}: {exc}")
    return result(code, None if 200 <= code < 300 else f"the endpoint answered HTTP {code}")


def deliver_webhook(broker: Broker, delivery_id: str, attempt: int) -> None:
    """Make attempt `attempt` of a delivery, if it is still the delivery's next one; a
    failed attempt sends the next one through `broker`, delayed."""
    config = db.settings()
    policy = retry_policy(config)
    timeout_s = config.webhook_timeout_ms / 1000
    lease_s = timeout_s + config.webhook_rescue_after_s
    with db.engine().begin() as conn:
        plan = start_attempt(conn, UUID(delivery_id), attempt, lease_s)
    if plan is None:
        log.info("Delivery %s attempt %d is not due; skipped.", delivery_id, attempt)
        return
    outcome = post_event(plan, allow_private=config.allow_private_webhooks, timeout_s=timeout_s)
    status, retry_in_ms = policy.after(attempt, outcome.status_code)
    with db.engine().begin() as conn:
        current = finish_attempt(
            conn, plan.delivery_id, attempt, outcome, status=status, retry_in_ms=retry_in_ms
        )
    metrics.webhook_delivery_duration_seconds.observe(outcome.duration_ms / 1000)
    result = {"SUCCEEDED": "success", "FAILED": "failed"}.get(status, "retry")
    metrics.webhook_deliveries_total.labels(result).inc()
    if status == "SUCCEEDED":
        log.info("Delivered event %s to %s on attempt %d.", plan.event_id, plan.url, attempt)
    elif status == "FAILED":
        log.warning(
            "Gave up delivering event %s to %s after %d attempts: %s",
            plan.event_id,
            plan.url,
            attempt,
            outcome.error,
        )
    elif current:
        log.info(
            "Attempt %d to deliver event %s failed (%s); next in %d ms.",
            attempt,
            plan.event_id,
            outcome.error,
            retry_in_ms,
        )
        send_attempt(broker, plan.delivery_id, attempt + 1, retry_in_ms)
