"""The posting actor's job: drain waiting transfers through `ledger_core.services.posting`.

A message carries no transfer: it says "there is work". Whichever worker takes it claims
whatever is PENDING, so duplicate or concurrent deliveries are harmless and a lost message
is made good by the next kick or by the scheduler's rescue. This adapter adds what the use
case leaves to the edge: the process's share of the posting slots, metrics and log lines,
and the delayed kick when everything claimed waits on busy wallets.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from dramatiq import Broker
from sqlalchemy.exc import DBAPIError

from ledger_core.persistence.transfers.conflicts import POSTING_ERROR, is_conflict
from ledger_core.persistence.transfers.posting import BatchResult
from ledger_core.services import posting
from messaging.messages import kick_posting
from runtime import metrics
from runtime.logs import info_line
from workers import db, posting_session

log = logging.getLogger("vaultcraft.posting")
BUSY_RETRY_MS = 100
"""Everything claimed waits on wallets another batch holds, or a session ended because its
worker is stopping: a worker looks again after this long (for busy wallets a safety net:
the batch holding them claims again itself when its claim was full)."""
LOGGED_IDS = 100
"""A batch's line names at most this many of its transfers."""

_slots_made = threading.Lock()
_local_slots: threading.BoundedSemaphore | None = None


def local_slots() -> threading.BoundedSemaphore:
    """This process's share of the posting slots, made on first use: a thread waits for one
    before it takes a pooled connection, so threads queued behind a running batch hold no
    connection.

    One more than the posting slots: a batch queued for the first posting slot behind a
    tenant's long batch holds one while it waits (`batch_locks.take_first_slot`), and a
    kick for another tenant's transfer must still reach PostgreSQL to take a free slot."""
    global _local_slots
    with _slots_made:
        if _local_slots is None:
            _local_slots = threading.BoundedSemaphore(db.settings().posting_concurrency + 1)
        return _local_slots


def post_pending(broker: Broker) -> None:
    """Post waiting transfers until a claim leaves nothing waiting beyond its shares, then
    stay on while more keep coming (`posting_session`). Kicks the posting workers again
    when what it claimed waits on busy wallets, or when it stopped a session because the
    worker is stopping."""
    settings = db.settings()
    limits = posting.PostingLimits(
        settings.posting_batch_size, settings.posting_concurrency, settings.fair_share
    )

    def drain(on_batch: Callable[[BatchResult, float], None]) -> bool:
        return posting.post_pending(db.engine(), limits, gate=local_slots(), on_batch=on_batch)

    try:
        again = drain(_observe) or posting_session.stay(
            broker,
            settings.posting_kick_interval_ms / 1000,
            drain,
            _observe,
            busy_interval_s=settings.posting_busy_interval_ms / 1000,
        )
    except DBAPIError as exc:
        if is_conflict(exc):
            log.warning("Posting batch rolled back and will be retried: %s", exc.orig)
        raise
    if again:
        kick_posting(broker, delay_ms=BUSY_RETRY_MS)


def _observe(result: BatchResult, elapsed: float) -> None:
    metrics.posting_batch_size.observe(result.claimed)
    metrics.posting_batch_duration_seconds.observe(elapsed)
    now = datetime.now(UTC)
    finished = Counter((o.status, o.failure_code or "") for o in result.outcomes)
    for (status, code), count in finished.items():
        metrics.transfers_finished_total.labels(status, code).inc(count)
        if code == POSTING_ERROR:
            metrics.posting_unwritable_total.inc(count)
    metrics.observe_each(
        metrics.transfer_submit_to_final_seconds,
        [max(0.0, (now - o.transfer.created_at).total_seconds()) for o in result.outcomes],
    )
    ids = [str(o.transfer.id) for o in result.outcomes[:LOGGED_IDS]]
    info_line(
        log.name,
        f"Posted a batch of {len(result.outcomes)} transfers ({result.completed} completed)"
        f" in {elapsed * 1000:.1f} ms.",
        **({"transaction_ids": ids} if ids else {}),
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
