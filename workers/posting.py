"""The posting actor: drain waiting transfers in batches, one database transaction each.

A message carries no transfer: it says "there is work". Whichever worker takes it claims
whatever is PENDING, so duplicate or concurrent deliveries are harmless and a lost message
is made good by the next kick or by the scheduler's rescue.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import dramatiq
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.risk.rules import load_policy
from ledger_core.persistence.transfers.conflicts import POSTING_ERROR, is_conflict
from ledger_core.persistence.transfers.posting import BatchResult, post_batch
from messaging.broker import POSTING_QUEUE, setup_broker
from runtime import metrics
from workers import db

log = logging.getLogger("vaultcraft.posting")
BUSY_RETRY_MS = 100
"""Everything claimed waits on wallets another batch holds: look again after this long (a
safety net: the batch holding them claims again itself when its claim was full)."""
LOGGED_IDS = 100
"""A batch's line names at most this many of its transfers."""
setup_broker()


_local_slots = threading.BoundedSemaphore(db.settings().posting_concurrency)
"""This process's share of the posting slots: a thread waits for one before it takes a
pooled connection, so threads queued behind a running batch hold no connection."""


def post_one_batch(limit: int) -> BatchResult:
    started = time.perf_counter()
    settings = db.settings()
    with _local_slots, db.engine().begin() as conn:
        result = post_batch(
            conn, limit, load_policy, settings.posting_concurrency, settings.fair_share
        )
    if result.claimed:
        _observe(result, time.perf_counter() - started)
    return result


def _observe(result: BatchResult, elapsed: float) -> None:
    metrics.posting_batch_size.observe(result.claimed)
    metrics.posting_batch_duration_seconds.observe(elapsed)
    now = datetime.now(UTC)
    for outcome in result.outcomes:
        metrics.transfers_finished_total.labels(outcome.status, outcome.failure_code or "").inc()
        if outcome.failure_code == POSTING_ERROR:
            metrics.posting_unwritable_total.inc()
        metrics.transfer_submit_to_final_seconds.observe(
            max(0.0, (now - outcome.transfer.created_at).total_seconds())
        )
    ids = [str(o.transfer.id) for o in result.outcomes]
    log.info(
        "Posted a batch of %d transfers (%d completed) in %.1f ms.",
        len(result.outcomes),
        result.completed,
        elapsed * 1000,
        extra={"transaction_ids": ids[:LOGGED_IDS]} if ids else None,
    )
    for decided in result.actions:
        log.info(
            "Hold action %s (%s of transaction %s) ended %s%s.",
            decided.action.id,
            decided.action.action.value,
            decided.action.transaction_id,
            decided.status,
            f": {decided.failure_code}" if decided.failure_code else "",
            extra={
                "transaction_id": str(decided.action.transaction_id),
                "organization_id": str(decided.action.organization_id),
                "failure_code": decided.failure_code,
            },
        )
    for outcome in result.outcomes:
        if not outcome.completed:
            log.info(
                "Transfer %s ended %s: %s.",
                outcome.transfer.id,
                outcome.status,
                outcome.failure_code,
                extra={
                    "transaction_id": str(outcome.transfer.id),
                    "organization_id": str(outcome.transfer.organization_id),
                    "failure_code": outcome.failure_code,
                },
            )


@dramatiq.actor(queue_name=POSTING_QUEUE, max_retries=20, time_limit=120_000)
def post_pending() -> None:
    """Post waiting transfers until a claim leaves nothing waiting beyond its shares."""
    limit = db.settings().posting_batch_size
    while True:
        try:
            result = post_one_batch(limit)
        except DBAPIError as exc:
            if is_conflict(exc):
                log.warning("Posting batch rolled back and will be retried: %s", exc.orig)
            raise
        if result.claimed == 0 and result.more:
            post_pending.send_with_options(delay=BUSY_RETRY_MS)
            return
        if not result.more:
            return
