"""`python -m bench.posting_cpu`: the posting worker's Python CPU per posted transfer.

No HTTP, no broker: a migrated scratch database gets one book of funded wallets and a few
thousand PENDING transfers between them, then `services.posting.post_one_batch` posts them
batch after batch, as a worker does, and the worker's `_observe` is told of each batch.
Reports the process CPU (`time.process_time`, psycopg's C work included) per posted
transfer, for the batches and for `_observe` apart; `--profile FILE` writes a cProfile of a
second round. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text

from bench.system import create_database, drop_database, migrate
from ledger_core.persistence.transfers.posting import post_batch
from ledger_core.services.posting import PostingLimits, post_one_batch
from runtime.logs import configure_logging
from runtime.metrics_exposition import enable_multiprocess_metrics
from runtime.settings import to_sqlalchemy_url

Observe = Callable[[Any, float], None]

INSERT_PENDING = text("""
    INSERT INTO transactions (organization_id, destination_organization_id, idempotency_key,
        request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency, metadata)
    SELECT :org, :org, 'cpu-' || gen_random_uuid(), repeat('0', 64), 'TRANSFER',
           w[1 + (g * 7) % cardinality(w)], w[1 + (g * 7 + 1 + g % 5) % cardinality(w)],
           1 + g % 100, 'USD', '{"order": "x"}'
    FROM generate_series(1, :count) AS g, (SELECT CAST(:wallets AS uuid[]) AS w) AS ws
    ORDER BY g
""")


def make_book(engine: Engine, wallets: int) -> tuple[UUID, list[UUID]]:
    """An organization with a SYSTEM wallet and `wallets` funded PRIMARY wallets."""
    with engine.begin() as conn:
        org = conn.execute(
            text(
                "INSERT INTO organizations (name, default_currency) VALUES ('cpu', 'USD')"
                " RETURNING id"
            )
        ).scalar_one()
        system = conn.execute(
            text(
                "INSERT INTO wallets (organization_id, type, currency)"
                " VALUES (:o, 'SYSTEM', 'USD') RETURNING id"
            ),
            {"o": org},
        ).scalar_one()
        ids = list(
            conn.execute(
                text(
                    "INSERT INTO wallets (organization_id, type, currency)"
                    " SELECT :o, 'PRIMARY', 'USD' FROM generate_series(1, :n) RETURNING id"
                ),
                {"o": org, "n": wallets},
            ).scalars()
        )
        conn.execute(
            text("""
                INSERT INTO transactions (organization_id, destination_organization_id,
                    idempotency_key, request_hash, kind, source_wallet_id,
                    destination_wallet_id, amount, currency)
                SELECT :o, :o, 'fund-' || w, repeat('0', 64), 'TRANSFER', :s, w, 100000000, 'USD'
                FROM unnest(CAST(:ws AS uuid[])) AS w
            """),
            {"o": org, "s": system, "ws": ids},
        )
    while True:
        with engine.begin() as conn:
            if not post_batch(conn, 500).claimed:
                break
    return org, ids


def queue(engine: Engine, org: UUID, wallets: list[UUID], count: int) -> None:
    with engine.begin() as conn:
        conn.execute(INSERT_PENDING, {"org": org, "count": count, "wallets": wallets})
        conn.execute(text("ANALYZE transactions"))


def drain(
    engine: Engine, limits: PostingLimits, observe: Observe
) -> tuple[int, float, float, list[float]]:
    """Post until nothing waits: (transfers, batch CPU s, `_observe` CPU s, per-batch CPU)."""
    posted, batch_cpu, observe_cpu = 0, 0.0, 0.0
    per_batch: list[float] = []
    while True:
        started = time.process_time()
        wall = time.perf_counter()
        result = post_one_batch(engine, limits)
        spent = time.process_time() - started
        if not result.claimed:
            return posted, batch_cpu, observe_cpu, per_batch
        posted += len(result.outcomes)
        batch_cpu += spent
        per_batch.append(spent / max(1, len(result.outcomes)))
        started = time.process_time()
        observe(result, time.perf_counter() - wall)
        observe_cpu += time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transfers", type=int, default=3000)
    parser.add_argument("--wallets", type=int, default=300)
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of one more round here")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = create_database(server, prefix="vaultcraft_cpu")
    with open(os.devnull, "w") as sink, tempfile.TemporaryDirectory() as metrics_dir:
        configure_logging("worker", stream=sink)
        enable_multiprocess_metrics(Path(metrics_dir))  # as in a worker process
        from workers.db import pooled_engine
        from workers.posting import _observe as observe

        try:
            migrate(url)
            engine = pooled_engine(  # as `workers.db` makes a worker's
                to_sqlalchemy_url(url),
                pool_size=4,
                max_overflow=4,
                application_name="vaultcraft-worker",
            )
            org, wallets = make_book(engine, args.wallets)
            limits = PostingLimits(args.batch, slots=2)
            queue(engine, org, wallets, 300)
            drain(engine, limits, observe)  # warm up: caches, prepared statements
            for n in range(args.rounds):
                queue(engine, org, wallets, args.transfers)
                posted, cpu, observed, per_batch = drain(engine, limits, observe)
                print(
                    f"round {n + 1}: {posted} transfers, post_one_batch "
                    f"{cpu / posted * 1000:.4f} CPU-ms/transfer "
                    f"(median batch {statistics.median(per_batch) * 1000:.4f}), "
                    f"_observe {observed / posted * 1000:.4f} CPU-ms/transfer"
                )
            if args.profile:
                queue(engine, org, wallets, args.transfers)
                profiler = cProfile.Profile(time.process_time)
                profiler.enable()
                drain(engine, limits, observe)
                profiler.disable()
                profiler.dump_stats(args.profile)
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats("cumulative").print_stats(60)
                stats.sort_stats("tottime").print_stats(40)
                print(out.getvalue())
            engine.dispose()
        finally:
            drop_database(url)


if __name__ == "__main__":
    main()
