"""The benchmark scenarios of performance.md, each returning its figures as a dict.

Throughput is what reached COMPLETED divided by the wall time from the first submit until
the last transfer was final, so work still queued when the load stops is counted in the
time, not silently dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from sqlalchemy import create_engine, text

from bench import profile_stats
from bench.dataset import DataSet, wait_until_final
from bench.loadgen import LoadSpec, run_load
from bench.system import System, create_database, drop_database, invariant_violations, migrate
from ledger_core.persistence.analytics.queries import time_queries
from ledger_core.persistence.audit.chain import OLDEST_UNSEALED_AGE_SQL
from ledger_core.persistence.events.outbox_relay import outbox_backlog
from ledger_core.persistence.transfers.claim import CLAIM
from ledger_core.persistence.transfers.ledger_generator import generate_ledger
from ledger_core.persistence.wallets.history import time_history_reads
from ledger_core.reconciliation import Mode
from ledger_core.services.reconciliation import reconcile as run_reconciliation
from runtime.settings import to_psycopg_url, to_sqlalchemy_url

Tick = Callable[[float], None]
RECONCILE_ORGANIZATIONS = 10
RECONCILE_WALLETS_PER_ORG = 1_000

SUBMIT_WAIT_S = 5
"""How long a `latency` client's submit waits for its transfer to be decided."""


@dataclass(frozen=True)
class Profile:
    """Sizes and durations of one run; `quick` is the one-minute smoke version."""

    name: str
    wallets: int
    reference_wallets: int
    clients: int
    bulk_clients: int
    duration_s: float
    latency_duration_s: float
    probe_s: int
    reference_s: int
    client_options: tuple[int, ...]
    batched_client_options: tuple[int, ...]
    scale_transfers: int
    reconcile_entries: int
    final_timeout_s: float


FULL = Profile("full", 10_000, 100_000, 64, 4, 30, 20, 2, 10, (1, 4, 8, 16, 32), (1, 2, 4),
               1_000_000, 1_000_000, 600)  # fmt: skip
QUICK = Profile("quick", 1_000, 10_000, 64, 2, 5, 5, 1, 2, (4, 16), (2,),
                100_000, 100_000, 120)  # fmt: skip


def status_counts(db_url: str, organization_id: str, tag: str) -> dict[str, int]:
    """How the transfers sent under `tag` ended, read from the database."""
    rows = profile_stats.tagged_rows(
        db_url, organization_id, tag, "status, count(*)", "GROUP BY status"
    )
    return {str(status): int(n) for status, n in rows}


def throughput(
    system: System,
    data: DataSet,
    db_url: str,
    mode: str,
    wallet_ids: list[str],
    tag: str,
    profile: Profile,
    on_tick: Tick | None = None,
) -> dict[str, Any]:
    """Closed-loop load (`closed` or `bulk`), then wait for finality and count what posted."""
    spec = LoadSpec(
        mode=mode,
        base_url=system.base_url,
        token=data.token,
        wallet_ids=wallet_ids,
        currency=data.currency,
        tag=tag,
        concurrency=profile.clients if mode == "closed" else profile.bulk_clients,
        duration_s=profile.duration_s,
    )
    time.sleep(profile_stats.STATS_SETTLE_S)
    writes_before = profile_stats.table_writes(db_url)
    backends = profile_stats.database_backends(db_url)
    multixacts_before = profile_stats.multixacts_used(db_url)
    wal_before = profile_stats.wal_position(db_url)
    size_before = profile_stats.database_size(db_url)
    cpu_before = profile_stats.cpu_seconds()
    load = run_load(spec, on_tick)
    final_at = asyncio.run(wait_until_final(system.base_url, data.token, profile.final_timeout_s))
    cpu_after = profile_stats.cpu_seconds()
    multixacts = profile_stats.multixacts_used(db_url) - multixacts_before
    wal = profile_stats.wal_position(db_url) - wal_before
    backends |= profile_stats.database_backends(db_url)
    cpu = profile_stats.cpu_by_group(cpu_before, cpu_after, system.roles())
    database_cpu = profile_stats.cpu_of(cpu_before, cpu_after, backends)
    counts = status_counts(db_url, data.organization_id, tag)
    time.sleep(profile_stats.STATS_SETTLE_S)
    writes = profile_stats.rows_written(
        writes_before, profile_stats.table_writes(db_url), counts.get("COMPLETED", 0)
    )
    grown = profile_stats.database_size(db_url) - size_before
    wall = final_at - load.first_submit if load.first_submit else None
    completed = counts.get("COMPLETED", 0)
    return {
        "posted_per_s": round(completed / wall, 1) if wall else None,
        "completed": completed,
        "statuses": counts,
        "wall_s": round(wall, 2) if wall else None,
        "drain_s": round(final_at - load.last_answer, 2) if load.last_answer else None,
        "wallets": len(wallet_ids),
        "clients": spec.concurrency,
        "cpu_s": cpu,
        "cpu_ms_per_transfer": cpu_per_transfer(cpu, completed),
        "database_backends_cpu_ms_per_transfer": (
            round(1000 * database_cpu / completed, 3) if completed else None
        ),
        "multixacts_per_transfer": round(multixacts / completed, 3) if completed else None,
        "wal_bytes_per_transfer": round(wal / completed) if completed else None,
        "database_bytes_per_transfer": round(grown / completed) if completed else None,
        "sizes": profile_stats.group_sizes(db_url, data.organization_id, tag),
        "rows_written": writes,
        "load": load.to_json(),
    }


def cpu_per_transfer(cpu: dict[str, float], completed: int) -> dict[str, float]:
    """CPU milliseconds per posted transfer of each role of the system and of PostgreSQL.

    PostgreSQL's figure counts every backend on the machine: on a shared server it includes
    other users' queries, so it is an upper bound.
    """
    if not completed:
        return {}
    wanted = ("gateway", "worker", "webhooks", "relay", "scheduler", "postgres", "redis-server")
    return {k: round(1000 * cpu[k] / completed, 3) for k in wanted if k in cpu}


def latency(
    system: System, data: DataSet, db_url: str, rate: float, profile: Profile, tag: str,
    on_tick: Tick | None = None, submit_wait_s: int = SUBMIT_WAIT_S,
) -> dict[str, Any]:  # fmt: skip
    """Open loop at `rate` transfers/s; submit-to-final latency per transfer. Each client
    submits with `?wait=submit_wait_s` (0: submits, then long-polls the transfer)."""
    spec = LoadSpec(
        mode="open",
        base_url=system.base_url,
        token=data.token,
        wallet_ids=data.wallet_ids,
        currency=data.currency,
        tag=tag,
        concurrency=0,
        duration_s=profile.latency_duration_s,
        rate=rate,
        submit_wait_s=submit_wait_s,
    )
    cpu_before = profile_stats.cpu_seconds()
    load = run_load(spec, on_tick)
    asyncio.run(wait_until_final(system.base_url, data.token, profile.final_timeout_s))
    cpu_after = profile_stats.cpu_seconds()
    cpu = profile_stats.cpu_by_group(cpu_before, cpu_after, system.roles())
    counts = status_counts(db_url, data.organization_id, tag)
    completed = counts.get("COMPLETED", 0)
    return {
        "rate_per_s": round(rate, 1),
        "client": f"submit with ?wait={submit_wait_s}" if submit_wait_s else "submit, long-poll",
        "p50_ms": load.latency_ms.get("p50"),
        "p99_ms": load.latency_ms.get("p99"),
        "client_latency_ms": load.latency_ms,
        "accept_latency_ms": load.accept_latency_ms,
        "server_posted_minus_created_ms": load.server_latency_ms,
        "scheduled_to_created_ms": load.before_created_ms,
        "posted_to_answered_ms": load.after_posted_ms,
        "statuses": counts,
        "cpu_s": cpu,
        "cpu_ms_per_transfer": cpu_per_transfer(cpu, completed),
        "postgres_cpu_ms_by_client": profile_stats.postgres_cpu_ms_by_client(
            db_url, cpu_before, cpu_after, completed
        ),
        "sizes": profile_stats.group_sizes(db_url, data.organization_id, tag),
        "load": load.to_json(),
    }


def catch_up_reconciliation(db_url: str, timeout_s: float = 600) -> dict[str, Any]:
    """Bring the reconciliation checkpoints past a freshly stored history.

    A ledger that grew to a million transfers was reconciled every minute along the way;
    one filled in a few seconds was not, and the scheduler's next incremental run would
    check the whole fill during the measurement. This runs that catch-up first (or waits
    for the scheduler's, if one is already running) and reports how long it took.
    """
    engine = create_engine(to_sqlalchemy_url(db_url))
    started = time.monotonic()
    try:
        while True:
            outcome = run_reconciliation(engine, Mode.INCREMENTAL, pending_after_s=60)
            if not outcome.skipped:
                break
            if time.monotonic() - started > timeout_s:
                raise RuntimeError("a reconciliation run did not finish in time")
            time.sleep(0.5)  # the scheduler's run holds the claim; ours follows it
    finally:
        engine.dispose()
    discrepancies = None if outcome.findings is None else len(outcome.findings.discrepancies)
    if outcome.status != "COMPLETED" or discrepancies:
        raise RuntimeError(f"catch-up reconciliation {outcome.status}: {discrepancies}")
    return {"seconds": round(time.monotonic() - started, 2), "status": outcome.status}


def settle_background(db_url: str, timeout_s: float = 600) -> dict[str, Any]:
    """Let the system finish what an earlier stage left it before the next is measured.

    A stage ends when its last transfer is final, but the relay may still be publishing
    its events, the sealer sealing its audit records, and the scheduler's next incremental
    reconciliation has all of it to check. After `bulk` (about 190,000 transfers in a
    minute) that work ran inside `latency`'s 20 seconds, and the database's CPU a transfer
    there counted it. This waits until no event waits for the relay and no audit record for
    the sealer, then brings the reconciliation checkpoints up to date
    (`catch_up_reconciliation`) and runs a `CHECKPOINT` (`checkpoint`), and reports how long
    each took.
    """
    engine = create_engine(to_sqlalchemy_url(db_url))
    started = time.monotonic()
    try:
        while True:
            with engine.connect() as conn:
                events, _oldest = outbox_backlog(conn)
                unsealed = conn.execute(text(OLDEST_UNSEALED_AGE_SQL)).scalar()
            if events == 0 and unsealed is None:
                break
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"{events} events unrelayed, audit records unsealed")
            time.sleep(0.2)
    finally:
        engine.dispose()
    relayed_and_sealed_s = round(time.monotonic() - started, 2)
    return {
        "relayed_and_sealed_s": relayed_and_sealed_s,
        "reconciliation": catch_up_reconciliation(db_url, timeout_s),
        "checkpoint_s": checkpoint(db_url),
    }


def checkpoint(db_url: str) -> float | None:
    """Run a `CHECKPOINT` and return its seconds (None where the role may not).

    An earlier stage's writes (the data set, `bulk`, the million transfers `scale` stores
    first) leave WAL behind, and the checkpoint the server starts for it is spread over up
    to a minute: one full run's `scale` ran its 30 seconds inside such a checkpoint, its
    writes competing for the cores. Every measured stage starts just after a finished
    checkpoint instead, each paying the first-touch full-page writes from the same point.
    """
    started = time.monotonic()
    try:
        with psycopg.connect(to_psycopg_url(db_url), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        return None
    return round(time.monotonic() - started, 2)


def reconcile(
    server_url: str,
    entries: int,
    organizations: int = RECONCILE_ORGANIZATIONS,
    wallets_per_org: int = RECONCILE_WALLETS_PER_ORG,
) -> dict[str, Any]:
    """Time a full reconciliation of a ledger of `entries` entries in its own database.

    The ledger comes from the product's generator (10 organizations of 1,000 wallets,
    completed transfers); the run is the scheduler's nightly one, `Mode.FULL`. Both the
    reconciliation and the independent invariant checker must find the books clean.
    """
    db_url = create_database(server_url, "vaultcraft_bench_recon")
    engine = create_engine(to_sqlalchemy_url(db_url))
    try:
        migrate(db_url)
        started = time.monotonic()
        with engine.begin() as conn:
            ledger = generate_ledger(
                conn, entries, wallets_per_org=wallets_per_org, organizations=organizations,
                currency="INR",
            )  # fmt: skip
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        generate_s = time.monotonic() - started
        outcome = run_reconciliation(engine, Mode.FULL, pending_after_s=60)
        findings = outcome.findings
        discrepancies = None if findings is None else len(findings.discrepancies)
        if outcome.status != "COMPLETED" or discrepancies:
            raise RuntimeError(
                f"full reconciliation {outcome.status}: {outcome.error or ''}"
                f" {discrepancies} discrepancies"
            )
        return {
            "entries": ledger.entries,
            "wallets": ledger.wallets,
            "generate_s": round(generate_s, 1),
            "seconds": round(outcome.duration_s, 2),
            "status": outcome.status,
            "entries_checked": findings.entries_checked if findings else None,
            "wallets_checked": findings.wallets_checked if findings else None,
            "discrepancies": discrepancies,
            "invariants": invariant_violations(db_url),
        }
    finally:
        engine.dispose()
        drop_database(db_url)


def analytics_timings(db_url: str, organization_id: str) -> dict[str, float]:
    """Best-of-5 milliseconds of each analytics statement for the benchmark organization."""
    engine = create_engine(to_sqlalchemy_url(db_url))
    try:
        with engine.connect() as conn:
            return time_queries(conn, UUID(organization_id))
    finally:
        engine.dispose()


def history_timings(db_url: str, organization_id: str, wallet_id: str) -> dict[str, float]:
    """Best-of-5 milliseconds of a balance-at-T read and of a metadata-filtered list page.

    The instant is the middle of the wallet's history; the tag is one no transfer carries,
    the worst case for a plan that walks the organization's history looking for it.
    """
    engine = create_engine(to_sqlalchemy_url(db_url))
    try:
        with engine.connect() as conn:
            return time_history_reads(conn, UUID(organization_id), UUID(wallet_id))
    finally:
        engine.dispose()


HOT_PATH_QUERIES: dict[str, str] = {
    "posting_claim": str(CLAIM).replace(":limit", "%(limit)s").replace(":share", "%(share)s"),
    "transactions_list_keyset": "SELECT * FROM transactions WHERE organization_id = %(org)s"
    " AND (created_at, id) < (now(), 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)"
    " ORDER BY created_at DESC, id DESC LIMIT 51",
    "wallet_entries": "SELECT * FROM ledger_entries WHERE wallet_id = %(wallet)s AND id > 0"
    " ORDER BY id LIMIT 201",
}


def _node_types(plan: dict[str, Any]) -> list[str]:
    found = [str(plan.get("Node Type"))]
    for child in plan.get("Plans", []):
        found += _node_types(child)
    return found


def explain_hot_paths(db_url: str, organization_id: str, wallet_id: str) -> dict[str, Any]:
    """EXPLAIN each hot-path query; say which plan nodes it uses and whether any is a Seq Scan."""
    out: dict[str, Any] = {}
    params = {"org": organization_id, "wallet": wallet_id, "limit": 1000, "share": 100}
    with psycopg.connect(to_psycopg_url(db_url)) as conn:
        for name, sql in HOT_PATH_QUERIES.items():
            (plan,) = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone() or ([],)
            nodes = _node_types(plan[0]["Plan"])
            out[name] = {"nodes": nodes, "seq_scan": "Seq Scan" in nodes}
    out["any_seq_scan"] = any(v["seq_scan"] for v in out.values())
    return out
