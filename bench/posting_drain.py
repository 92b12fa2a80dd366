"""`python -m bench.posting_drain`: how fast the posting workers drain a backlog.

No HTTP, no broker: a migrated scratch database gets one organization with `--wallets`
funded wallets and `--transfers` PENDING transfers between random pairs of them, then
`--threads` threads call `services.posting.post_one_batch` (as a worker's threads do, with
`--slots` posting slots) until nothing waits. A thread whose batch found every claimed
transfer waiting on another batch pauses for `workers.posting.BUSY_RETRY_MS`, as a worker's
delayed kick would. Prints transfers posted a second, the batches' mean size and time, and
how many came back empty. The statistics are taken before the backlog is queued, as after
a quiet spell in production. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, text

from bench.posting_cpu import make_book
from bench.system import create_database, drop_database, migrate
from ledger_core.services.posting import PostingLimits, post_one_batch
from runtime.settings import to_sqlalchemy_url
from workers.posting import BUSY_RETRY_MS

QUEUE_RANDOM_PAIRS = text("""
    INSERT INTO transactions (organization_id, destination_organization_id, idempotency_key,
        request_hash, kind, source_wallet_id, destination_wallet_id, amount, currency)
    SELECT :org, :org, 'drain-' || g, repeat('0', 64), 'TRANSFER', w[p.s],
           w[1 + (p.s + floor(random() * (cardinality(w) - 1))::int) % cardinality(w)],
           1 + g % 99, 'USD'
    FROM generate_series(1, :count) AS g
    CROSS JOIN (SELECT CAST(:wallets AS uuid[]) AS w) AS ws
    CROSS JOIN LATERAL (SELECT 1 + floor(random() * cardinality(w))::int + 0 * g AS s) AS p
    ORDER BY g
""")
"""Each transfer's source is a random wallet and its destination a random other one."""


@dataclass
class Drain:
    batches: list[tuple[int, float]] = field(default_factory=list)
    empty: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def drain(engine: Engine, limits: PostingLimits, threads: int) -> Drain:
    gate = threading.BoundedSemaphore(limits.slots or threads)
    done = threading.Event()
    record = Drain()

    def post() -> None:
        while not done.is_set():
            started = time.perf_counter()
            result = post_one_batch(engine, limits, gate)
            with record.lock:
                if result.claimed:
                    record.batches.append((result.claimed, time.perf_counter() - started))
                elif result.more:
                    record.empty += 1
            if result.claimed == 0 and result.more:
                time.sleep(BUSY_RETRY_MS / 1000)
            elif result.claimed == 0:
                done.set()

    workers = [threading.Thread(target=post) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transfers", type=int, default=100_000)
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = create_database(server, prefix="vaultcraft_drain")
    try:
        migrate(url)
        engine = create_engine(to_sqlalchemy_url(url), pool_size=args.threads + 2)
        org, wallets = make_book(engine, args.wallets)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        with engine.begin() as conn:
            conn.execute(
                QUEUE_RANDOM_PAIRS, {"org": org, "count": args.transfers, "wallets": wallets}
            )
        started = time.perf_counter()
        record = drain(engine, PostingLimits(args.batch, args.slots), args.threads)
        wall = time.perf_counter() - started
        posted = sum(size for size, _ in record.batches)
        print(
            f"{posted} transfers in {wall:.1f} s: {posted / wall:,.0f} posted/s; "
            f"{len(record.batches)} batches of {statistics.mean(s for s, _ in record.batches):.0f} "
            f"in {statistics.mean(t for _, t in record.batches) * 1000:.0f} ms on average; "
            f"{record.empty} empty"
        )
        engine.dispose()
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
