"""`python -m bench.run [--quick] [--scenarios ...]`: the benchmark of performance.md.

Fresh database, pgbench references, the system started as subprocesses, a data set built
through the API, each scenario driven by a separate load-generator process, invariants
checked with the product's `check_invariants` after each scenario, then a table and one
JSON line on stdout.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench import core_probe, scenarios
from bench import pgbench_reference as ref
from bench.dataset import DataSet, build
from bench.ledger_fill import fill_stored_transfers
from bench.report import emit
from bench.system import (
    ROOT,
    System,
    create_database,
    drop_database,
    exit_on_sigterm,
    invariant_violations,
    migrate,
)
from runtime.embedded import ensure_services, stop_services
from runtime.settings import to_psycopg_url

ALL = ("uniform", "hot", "bulk", "latency", "reconcile", "scale")


def machine(db_url: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with psycopg.connect(to_psycopg_url(db_url)) as conn:
        (version,) = conn.execute("SHOW server_version").fetchone() or ("?",)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "postgres": version, "commit": commit or None,
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


class Runner:
    """One benchmark run: owns the database, the system, the results and the progress bar."""

    def __init__(self, args: argparse.Namespace, progress: Progress) -> None:
        self.args = args
        self.profile = scenarios.QUICK if args.quick else scenarios.FULL
        self.wanted = set(args.scenarios)
        if "scale" in self.wanted or ("latency" in self.wanted and self._latency_needs_uniform()):
            self.wanted.add("uniform")  # `scale`, and `latency` without a reference or rate
        self.progress = progress
        self.task = progress.add_task("starting", total=3 + len(self.wanted))
        self.result: dict[str, Any] = {"profile": self.profile.name, "references": {},
                                       "scenarios": {}, "invariants": {}, "errors": {},
                                       "core_probe_ms": {}}  # fmt: skip
        self.system: System | None = None
        self.data: DataSet | None = None

    def step(self, label: str, fn: Callable[[], Any], key: str | None = None) -> Any:
        """Run one stage; an exception is recorded under `errors` and the run goes on.

        The core probe runs first, with the system idle (see `bench.core_probe`)."""
        self.progress.update(self.task, description=label)
        self.result["core_probe_ms"][key or label] = core_probe.probe_ms()
        try:
            return fn()
        except Exception as exc:  # one failed stage must not hide the others
            self.result["errors"][key or label] = f"{type(exc).__name__}: {exc}"
            return None
        finally:
            self.progress.advance(self.task)

    def tick(self, label: str) -> Callable[[float], None]:
        return lambda elapsed: self.progress.update(
            self.task, description=f"{label} {elapsed:.0f}s"
        )

    def keep_server_errors(self, name: str) -> None:
        """A 5xx answer is a finding: keep the gateway's last warnings beside the figures."""
        scen = self.result["scenarios"].get(name, {})
        codes = scen.get("load", {}).get("status_codes", {})
        if self.system is not None and any(code.startswith("5") for code in codes):
            scen["gateway_problems"] = self.system.log_problems("gateway")

    def check(self, after: str, db_url: str) -> None:
        self.progress.update(self.task, description=f"invariants after {after}")
        self.result["invariants"][after] = invariant_violations(db_url)

    def references(self, db_url: str) -> None:
        p = self.profile
        ref.setup_reference_data(db_url, p.reference_wallets)
        runs: dict[str, Callable[[], ref.ReferenceResult]] = {
            "per_commit": lambda: ref.per_commit_reference(
                db_url, p.reference_wallets, list(p.client_options), p.probe_s, p.reference_s),
            "per_commit_hot": lambda: ref.hot_reference(
                db_url, list(p.client_options), p.probe_s, p.reference_s),
            "batched": lambda: ref.batched_reference(
                db_url, p.reference_wallets, list(p.batched_client_options), p.probe_s,
                p.reference_s),
        }  # fmt: skip
        for name, run in runs.items():
            self.progress.update(self.task, description=f"pgbench {name}")
            checkpoint_s = scenarios.checkpoint(db_url)
            self.result["references"][name] = run().to_json() | {"checkpoint_s": checkpoint_s}
        ref.mark_reference_events_relayed(db_url)
        self.check("references", db_url)

    def start_system(self, db_url: str, redis_url: str, data_dir: Path) -> None:
        self.system = System(db_url, redis_url, data_dir)
        self.system.start()
        self.data = asyncio.run(build(self.system.base_url, self.profile.wallets, "setup"))
        # The scheduler's first incremental reconciliation checkpoints every wallet, the
        # references' and the data set's: a one-off catch-up that would otherwise land in
        # the first scenario's measurement (as `scale` does after its fill).
        self.progress.update(self.task, description="reconciling the set-up")
        self.result["setup_reconciliation"] = scenarios.catch_up_reconciliation(db_url)

    def throughput(self, name: str, mode: str, db_url: str, wallets: int | None = None) -> None:
        assert self.system is not None and self.data is not None, "the system did not start"
        ids = self.data.wallet_ids[:wallets] if wallets else self.data.wallet_ids
        settled = self.settle(name, db_url)
        out = scenarios.throughput(self.system, self.data, db_url, mode, ids, name,
                                   self.profile, self.tick(name))  # fmt: skip
        out["settled_before"] = settled
        if name in ("uniform", "scale"):
            out["analytics_ms"] = scenarios.analytics_timings(db_url, self.data.organization_id)
        if name == "uniform":
            out["memory_mb"] = self.system.rss_mb()
        self.result["scenarios"][name] = out
        self.keep_server_errors(name)
        self.check(name, db_url)

    def latency(self, db_url: str) -> None:
        assert self.system is not None and self.data is not None, "the system did not start"
        rate, basis = self.latency_rate()
        settled = self.settle("latency", db_url)
        wait_s = scenarios.SUBMIT_WAIT_S if self.args.latency_client == "wait" else 0
        out = scenarios.latency(self.system, self.data, db_url, rate, self.profile, "latency",
                                self.tick("latency"), submit_wait_s=wait_s)  # fmt: skip
        out["rate_basis"] = basis
        out["settled_before"] = settled
        self.result["scenarios"]["latency"] = out
        self.keep_server_errors("latency")
        self.check("latency", db_url)

    def settle(self, name: str, db_url: str) -> dict[str, Any]:
        """Before a measured stage: the earlier stages' events relayed, audit records
        sealed and transfers reconciled (`scenarios.settle_background`)."""
        self.progress.update(self.task, description=f"{name}: settling what came before")
        return scenarios.settle_background(db_url)

    def _latency_needs_uniform(self) -> bool:
        """Whether `latency_rate` will take half `uniform`: no rate given, no references."""
        return not self.args.latency_rate and self.args.skip_references

    def latency_rate(self) -> tuple[float, str]:
        """Half the per-commit reference's rate: a fixed load, so a slower system does not
        earn an easier target. Without references (`--skip-references`), half `uniform`;
        `--latency-rate` sets it outright (to compare two trees at one load)."""
        if self.args.latency_rate:
            return self.args.latency_rate, "set by --latency-rate"
        reference = self.result["references"].get("per_commit", {}).get("transfers_per_s")
        if reference:
            return reference / 2, "half the per-commit reference"
        uniform = self.result["scenarios"].get("uniform", {}).get("posted_per_s")
        if not uniform:
            raise RuntimeError("no per-commit reference or uniform rate to take half of")
        return uniform / 2, "half uniform (no references in this run)"

    def reconcile(self, server_url: str) -> None:
        entries = self.profile.reconcile_entries
        out = scenarios.reconcile(server_url, entries)
        self.result["invariants"]["reconcile"] = out.pop("invariants")
        self.result["scenarios"]["reconcile"] = out

    def scale(self, db_url: str) -> None:
        assert self.system is not None and self.data is not None, "the system did not start"
        self.progress.update(self.task, description="scale: storing transfers")
        fill_s = fill_stored_transfers(
            db_url, self.data.organization_id, self.profile.scale_transfers
        )
        self.progress.update(self.task, description="scale: reconciling the stored history")
        caught_up = scenarios.catch_up_reconciliation(db_url)
        explain = scenarios.explain_hot_paths(
            db_url, self.data.organization_id, self.data.wallet_ids[0]
        )
        history_ms = scenarios.history_timings(
            db_url, self.data.organization_id, self.data.wallet_ids[0]
        )
        self.throughput("scale", "closed", db_url)
        self.result["scenarios"]["scale"].update(
            stored_transfers=self.profile.scale_transfers,
            fill_s=round(fill_s, 1),
            catch_up_reconciliation=caught_up,
            explain=explain,
            history_ms=history_ms,
        )

    def run(self, server_url: str, redis_url: str, data_dir: Path) -> dict[str, Any]:
        db_url = self.step("fresh database", lambda: create_database(server_url))
        if db_url is None:
            return self.result
        try:
            self.step("migrations", lambda: migrate(db_url))
            self.result["machine"] = machine(db_url)
            if not self.args.skip_references:
                self.step("pgbench references", lambda: self.references(db_url), "references")
            system_wanted = self.wanted - {"reconcile"}
            if system_wanted:
                self.step(
                    "starting system",
                    lambda: self.start_system(db_url, redis_url, data_dir / "app"),
                    "system",
                )
            for name, mode, wallets in (
                ("uniform", "closed", None),
                ("hot", "closed", 10),
                ("bulk", "bulk", None),
            ):
                if name in self.wanted:
                    self.step(name, functools.partial(self.throughput, name, mode, db_url, wallets))
            if "latency" in self.wanted:
                self.step("latency", lambda: self.latency(db_url), "latency")
            if "reconcile" in self.wanted:
                self.step("reconcile", lambda: self.reconcile(server_url))
            if "scale" in self.wanted:
                self.step("scale", lambda: self.scale(db_url), "scale")
            self.result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            if self.system is not None:
                self.system.stop()
            if not self.args.keep_database:
                drop_database(db_url)
            else:
                self.result["database_url"] = db_url
        return self.result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--scenarios", nargs="+", choices=ALL, default=list(ALL))
    parser.add_argument("--skip-references", action="store_true", help="no pgbench runs")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the bench db")
    parser.add_argument(
        "--latency-rate",
        type=float,
        help="transfers/s of the `latency` open loop (default: half the per-commit reference)",
    )
    parser.add_argument(
        "--latency-client",
        choices=("wait", "poll"),
        default="wait",
        help="`latency`: submit with ?wait= (one request a transfer, the default), or submit"
        " and then long-poll GET /transactions/{id}?wait= (two)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    given_db, given_redis = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    work = Path(tempfile.mkdtemp(prefix="vaultcraft-bench-"))
    started = time.monotonic()
    console = Console(stderr=True)
    columns = (TextColumn("{task.description:<36}"), BarColumn(), TimeElapsedColumn())
    try:
        urls = ensure_services(work / "services", given_db, given_redis)
        with Progress(*columns, console=console, transient=True) as progress:
            result = Runner(args, progress).run(urls.database_url, urls.redis_url, work)
    finally:
        stop_services(work / "services", given_db, given_redis)
        shutil.rmtree(work, ignore_errors=True)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    emit(result, sys.stdout)
    failed = result["errors"] or any(result["invariants"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
