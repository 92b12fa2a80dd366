"""The two pgbench references every benchmark figure is divided by.

PostgreSQL itself does the posting work with no application in between, against the real
VaultCraft schema (see performance.md): the per-commit reference posts one transfer per
database transaction at the client count that gives its best rate, the batched reference
posts 1,000 transfers per database transaction with set-based SQL. Both run on the same
server, in the same run, as the scenarios they are compared with.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from runtime.settings import to_psycopg_url

HERE = Path(__file__).resolve().parent
SETUP_SQL = HERE / "reference_setup.sql"
PER_COMMIT_SCRIPT = HERE / "per_commit.pgbench.sql"
BATCHED_SCRIPT = HERE / "batched.pgbench.sql"
BATCH_SIZE = 1000
HOT_WALLETS = 10

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


@dataclass(frozen=True)
class PgbenchRun:
    """One pgbench invocation: its client count, length and what it reported."""

    clients: int
    duration_s: float
    tps: float
    transactions: int
    failed: int


@dataclass(frozen=True)
class ReferenceResult:
    """A reference figure in transfers/s, with the probes that chose its client count."""

    name: str
    transfers_per_s: float
    clients: int
    transfers_per_db_transaction: int
    wallets: int
    probes: list[PgbenchRun] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pgbench_binary() -> str:
    """pgbench from PATH if present, else the one shipped in the pgserver wheel."""
    found = shutil.which("pgbench")
    if found:
        return found
    from runtime.embedded import postgres_bin_dir

    path = postgres_bin_dir() / "pgbench"
    if not path.exists():
        raise RuntimeError("pgbench is neither on PATH nor inside the pgserver wheel")
    return str(path)


def setup_reference_data(url: str, n_wallets: int) -> None:
    """Create the reference organization with `n_wallets` funded PRIMARY wallets (idempotent)."""
    with psycopg.connect(to_psycopg_url(url)) as conn:
        conn.execute("SELECT set_config('bench.n_wallets', %s, true)", (str(n_wallets),))
        conn.execute(SETUP_SQL.read_text())  # trusted file, many statements
    with psycopg.connect(to_psycopg_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE wallets, transactions, ledger_entries, outbox")


def mark_reference_events_relayed(url: str) -> int:
    """Move the relay's position past the references' outbox rows, written before the
    system starts, so its relay does not chase them. Returns how many it skipped."""
    with psycopg.connect(to_psycopg_url(url)) as conn:
        cur = conn.execute(
            "WITH skipped AS (SELECT count(*) AS n, max(o.id) AS last"
            " FROM outbox AS o, outbox_relay_cursor AS c WHERE o.id > c.position)"
            " UPDATE outbox_relay_cursor SET position = greatest(position, skipped.last)"
            " FROM skipped WHERE skipped.last IS NOT NULL RETURNING skipped.n"
        )
        row = cur.fetchone()
        return int(row[0]) if row else 0


def run_pgbench(
    url: str, script: Path, clients: int, duration_s: int, variables: dict[str, int]
) -> PgbenchRun:
    """Run one pgbench script for `duration_s` seconds with prepared statements."""
    args = [
        pgbench_binary(),
        "-n",  # no vacuum of pgbench's own tables: there are none
        "-M", "prepared",
        "-c", str(clients),
        "-j", str(min(clients, os.cpu_count() or 1)),
        "-T", str(duration_s),
        "-f", str(script),
    ]  # fmt: skip
    for name, value in variables.items():
        args += ["-D", f"{name}={value}"]
    args.append(to_psycopg_url(url))
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return parse_pgbench_output(proc.stdout, clients, duration_s)


def parse_pgbench_output(stdout: str, clients: int, duration_s: float) -> PgbenchRun:
    """Read tps, processed and failed counts from pgbench's summary."""
    tps = _TPS.search(stdout)
    processed = _PROCESSED.search(stdout)
    if tps is None or processed is None:
        raise RuntimeError(f"pgbench printed no rate:\n{stdout[-2000:]}")
    failed = _FAILED.search(stdout)
    return PgbenchRun(
        clients=clients,
        duration_s=duration_s,
        tps=float(tps.group(1)),
        transactions=int(processed.group(1)),
        failed=int(failed.group(1)) if failed else 0,
    )


def best_rate(
    url: str,
    name: str,
    script: Path,
    variables: dict[str, int],
    client_options: list[int],
    probe_s: int,
    duration_s: int,
    transfers_per_txn: int,
) -> ReferenceResult:
    """Probe each client count briefly, then measure the best one for `duration_s`."""
    probes = [run_pgbench(url, script, c, probe_s, variables) for c in client_options]
    best = max(probes, key=lambda run: run.tps)
    final = run_pgbench(url, script, best.clients, duration_s, variables)
    return ReferenceResult(
        name=name,
        transfers_per_s=round(final.tps * transfers_per_txn, 1),
        clients=final.clients,
        transfers_per_db_transaction=transfers_per_txn,
        wallets=variables["hi"] - variables["lo"] + 1,
        probes=[*probes, final],
    )


def per_commit_reference(
    url: str, n_wallets: int, client_options: list[int], probe_s: int, duration_s: int
) -> ReferenceResult:
    """One transfer per commit among `n_wallets` wallets."""
    return best_rate(
        url,
        "per_commit",
        PER_COMMIT_SCRIPT,
        {"lo": 1, "hi": n_wallets},
        client_options,
        probe_s,
        duration_s,
        1,
    )


def hot_reference(
    url: str, client_options: list[int], probe_s: int, duration_s: int
) -> ReferenceResult:
    """One transfer per commit, both sides among the 10 hot wallets."""
    return best_rate(
        url,
        "per_commit_hot",
        PER_COMMIT_SCRIPT,
        {"lo": 1, "hi": HOT_WALLETS},
        client_options,
        probe_s,
        duration_s,
        1,
    )


def batched_reference(
    url: str, n_wallets: int, client_options: list[int], probe_s: int, duration_s: int
) -> ReferenceResult:
    """1,000 transfers per commit among `n_wallets` wallets, set-based."""
    return best_rate(
        url,
        "batched",
        BATCHED_SCRIPT,
        {"lo": 1, "hi": n_wallets},
        client_options,
        probe_s,
        duration_s,
        BATCH_SIZE,
    )
