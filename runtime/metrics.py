"""Every Prometheus metric VaultCraft exports, defined once so names never drift.

Names follow Prometheus conventions: `_total` for counters, `_seconds` for durations,
base units everywhere. No label names a tenant, a user, a currency or why a login failed,
and no series sums money: the metrics are for operators, not a side door into the books.
Worker processes run prometheus-client in multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`),
so gauges declare how they aggregate across processes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)

http_requests_total = Counter(
    "vaultcraft_http_requests_total",
    "HTTP requests answered by the gateway.",
    ["method", "route", "status"],
)
http_request_duration_seconds = Histogram(
    "vaultcraft_http_request_duration_seconds",
    "Time the gateway took to answer a request.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
transfers_accepted_total = Counter(
    "vaultcraft_transfers_accepted_total",
    "Transfer intents durably stored as PENDING.",
    ["kind"],
)
transfers_finished_total = Counter(
    "vaultcraft_transfers_finished_total",
    "Transfers that reached a final state.",
    ["status", "failure_code"],
)
posting_batch_size = Histogram(
    "vaultcraft_posting_batch_size",
    "Transfers posted in one database transaction.",
    buckets=BATCH_BUCKETS,
)
posting_batch_duration_seconds = Histogram(
    "vaultcraft_posting_batch_duration_seconds",
    "Time to claim, check and write one posting batch.",
    buckets=LATENCY_BUCKETS,
)
transfer_submit_to_final_seconds = Histogram(
    "vaultcraft_transfer_submit_to_final_seconds",
    "Time from a transfer's acceptance to its final state.",
    buckets=LATENCY_BUCKETS,
)
outbox_backlog = Gauge(
    "vaultcraft_outbox_backlog",
    "Events written to the outbox and not yet relayed.",
    multiprocess_mode="max",
)
outbox_oldest_unsent_age_seconds = Gauge(
    "vaultcraft_outbox_oldest_unsent_age_seconds",
    "Age of the oldest event not yet relayed.",
    multiprocess_mode="max",
)
audit_oldest_unsealed_age_seconds = Gauge(
    "vaultcraft_audit_oldest_unsealed_age_seconds",
    "Age of the first committed audit record the sealer has not reached.",
    multiprocess_mode="max",
)
events_relayed_total = Counter(
    "vaultcraft_events_relayed_total",
    "Outbox events published to the event stream and webhook queue.",
    ["type"],
)
webhook_deliveries_total = Counter(
    "vaultcraft_webhook_deliveries_total",
    "Webhook delivery attempts by result (success, retry, failed).",
    ["result"],
)
webhook_delivery_duration_seconds = Histogram(
    "vaultcraft_webhook_delivery_duration_seconds",
    "Time a receiver took to answer a webhook delivery.",
    buckets=LATENCY_BUCKETS,
)
queue_depth = Gauge(
    "vaultcraft_queue_depth",
    "Messages waiting in a broker queue (measured from Redis).",
    ["queue"],
    multiprocess_mode="max",
)
pending_transfers = Gauge(
    "vaultcraft_pending_transfers",
    "Transfers accepted and not yet final.",
    multiprocess_mode="max",
)
oldest_pending_age_seconds = Gauge(
    "vaultcraft_oldest_pending_age_seconds",
    "Age of the oldest PENDING transfer (0 when none waits): a stalled pipeline grows it.",
    multiprocess_mode="max",
)
posting_unwritable_total = Counter(
    "vaultcraft_posting_unwritable_total",
    "Transfers the database refused to write, failed alone as posting_error.",
)
settlement_pairs_skipped_total = Counter(
    "vaultcraft_settlement_pairs_skipped_total",
    "Pairs a settlement run skipped (clearing drift, or totals past the 64-bit range).",
    ["reason"],
)
pending_rescued_total = Counter(
    "vaultcraft_pending_rescued_total",
    "Times PENDING transfers older than the rescue window were re-enqueued.",
)
reconciliation_runs_total = Counter(
    "vaultcraft_reconciliation_runs_total",
    "Reconciliation runs by outcome.",
    ["status"],
)
reconciliation_last_run_discrepancies = Gauge(
    "vaultcraft_reconciliation_last_run_discrepancies",
    "Discrepancies found by the latest reconciliation run.",
    multiprocess_mode="max",
)
reconciliation_discrepancies_total = Counter(
    "vaultcraft_reconciliation_discrepancies_total",
    "Discrepancies found over all reconciliation runs, by kind.",
    ["kind"],
)
reconciliation_duration_seconds = Histogram(
    "vaultcraft_reconciliation_duration_seconds",
    "Time a reconciliation run took.",
    ["mode"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
settlements_total = Counter(
    "vaultcraft_settlements_total",
    "Settlements written (no amounts or currencies: those are other organizations' books).",
)
login_failures_total = Counter(
    "vaultcraft_login_failures_total",
    "Failed logins (no reason: which emails exist is not for scrapers to learn).",
)
rate_limit_fail_open_total = Counter(
    "vaultcraft_rate_limit_fail_open_total",
    "Requests let through unlimited because Redis could not be asked.",
)
worker_messages_total = Counter(
    "vaultcraft_worker_messages_total",
    "Messages handled by worker processes, by queue, actor and outcome (ok, error, skipped).",
    ["queue", "actor", "outcome"],
)
worker_message_duration_seconds = Histogram(
    "vaultcraft_worker_message_duration_seconds",
    "Time a worker spent handling one message.",
    ["queue", "actor"],
    buckets=LATENCY_BUCKETS,
)


def observe_each(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe(amount)` for each of `amounts` (numbers, not NaN), with one
    update per bucket they fall in and one of the sum instead of two updates each: in a
    worker process every update writes the metric's shared file under a lock.

    Reads prometheus-client's layout of a histogram (its bounds, bucket values and sum),
    which `tests/unit/test_posting_speedups.py` holds to what `observe` does."""
    if not amounts:
        return
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]
    bounds = histogram._upper_bounds
    for bucket, count in Tally(bisect_left(bounds, amount) for amount in amounts).items():
        histogram._buckets[bucket].inc(count)
    histogram._sum.inc(sum(amounts))
