"""`python -m bench.fixed_rate --rate 1000`: what a transfer costs at a fixed submit rate.

Starts the system as `bench.run` does, builds 1,000 funded wallets through the API, then
submits single transfers between random pairs on a fixed schedule (64 keep-alive
connections, open loop, no long polls) for `--seconds`, `--rounds` times. Each round
reports the `202` latency, the CPU every role spent a posted transfer (from the first
submit until nothing is PENDING), PostgreSQL's CPU split by the client its backends serve
(`application_name`; the gateway's have none), the time from each transfer's intake
transaction to its posting transaction, and the group-commit and posting batch sizes.

A closed loop measures how fast the system can go, and its CPU a transfer moves with the
batch sizes that speed allows. At a fixed rate two trees do the same work, so their CPU a
transfer and their latency compare directly: run them alternately (`PYTHONPATH` selects
the tree the child processes import).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Any

import orjson
import uvloop

from bench import profile_stats as stats
from bench.dataset import DataSet, wait_until_final
from bench.loadgen import (
    TRANSFER_PATH,
    KeepAlive,
    LoadSpec,
    ends_with_the_run,
    request_headers,
    summarize,
    transfer_body,
)
from bench.scenarios import cpu_per_transfer
from bench.system import System, exit_on_sigterm, system_with_wallets

CONNECTIONS = 64


def _submit(spec: LoadSpec, out: Connection) -> None:
    """The load: each of `spec.concurrency` connections sends on its own fixed schedule;
    reports the count sent, the count refused and the `202` latencies in ms."""

    async def main() -> None:
        sent, refused, latencies = 0, 0, list[float]()
        start = time.monotonic() + 0.2
        stop = start + spec.duration_s
        period = spec.concurrency / spec.rate

        async def connection(n: int) -> None:
            nonlocal sent, refused
            client = KeepAlive(spec.base_url, request_headers(spec))
            at = start + n * period / spec.concurrency
            while at < stop:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                body = orjson.dumps(transfer_body(spec))
                began = time.monotonic()
                status, _ = await client.post(
                    TRANSFER_PATH, body, {"Idempotency-Key": os.urandom(12).hex()}
                )
                latencies.append((time.monotonic() - began) * 1000)
                sent += 1
                refused += status != 202
                at += period

        await asyncio.gather(*(connection(n) for n in range(spec.concurrency)))
        out.send((sent, refused, latencies))

    uvloop.run(main())


def one_round(
    system: System, data: DataSet, db_url: str, args: argparse.Namespace, n: int
) -> dict[str, Any]:
    """Submit at `args.rate` for `args.seconds`, wait until every transfer is final, and
    report what it cost."""
    tag = f"fixed-{n}"
    spec = LoadSpec("open", system.base_url, data.token, data.wallet_ids, data.currency, tag,
                    CONNECTIONS, args.seconds, rate=args.rate)  # fmt: skip
    roles = system.roles()
    receive, send = multiprocessing.Pipe(duplex=False)
    cpu0 = stats.cpu_seconds()
    load = multiprocessing.Process(target=_submit, args=(spec, send))
    load.start()
    with ends_with_the_run(load):
        sent, refused, latencies = receive.recv()
    asyncio.run(wait_until_final(system.base_url, data.token, 300))
    cpu1 = stats.cpu_seconds()
    by_role = stats.cpu_by_group(cpu0, cpu1, roles)
    return {
        "round": n,
        "sent": sent,
        "refused": refused,
        "accept_ms": summarize(latencies),
        "cpu_ms_per_transfer": cpu_per_transfer(by_role, sent),
        "postgres_cpu_ms_by_client": stats.postgres_cpu_ms_by_client(db_url, cpu0, cpu1, sent),
        "created_to_posted_ms": stats.created_to_posted_ms(db_url, data.organization_id, tag),
        "sizes": stats.group_sizes(db_url, data.organization_id, tag),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fixed_rate", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000, help="transfers submitted a second")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--wallets", type=int, default=1000)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    with system_with_wallets("vaultcraft_fixed_rate", args.wallets) as (system, data, db_url):
        for n in range(args.rounds):
            time.sleep(2)
            print(json.dumps(one_round(system, data, db_url, args, n)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
