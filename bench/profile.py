"""`python -m bench.profile --scenario uniform`: where the time of one load goes.

Starts the system as `bench.run` does, builds the data set through the API, then drives
one scenario's load while py-spy samples the gateway, the workers, the relay and the
scheduler (idle threads included, so time blocked on PostgreSQL or Redis shows). Around
the load it reads CPU per process, pg_stat_statements (when the server preloads it),
the gateway's group-commit sizes and the posting batch sizes, and the dispatcher's kicks.
Writes `report.json`, the raw stacks and one SVG flame graph per role into `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import profile_stats as stats
from bench.dataset import DataSet, wait_until_final
from bench.loadgen import LoadSpec, run_load, summarize
from bench.scenarios import SUBMIT_WAIT_S
from bench.system import System, system_with_wallets

MODES = {
    "uniform": ("closed", None),
    "hot": ("closed", 10),
    "bulk": ("bulk", None),
    "latency": ("open", None),
}
FOCUS = {
    "gateway": "Handle._run",  # callbacks run by the event loop: the loop is busy
    "worker": "post_pending",
    "webhooks": "WorkerThread.process_message",
    "relay": "listen_once",
    "scheduler": "run_job",
}


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def record(
    pid: int, out: Path, seconds: float, rate: int, children: bool, idle: bool = True
) -> list[Any]:
    """Start py-spy on `pid` for `seconds`: one raw-stacks run and one flame-graph run.

    With `idle`, threads blocked on PostgreSQL or Redis are sampled too (where time goes);
    without, only the thread holding the GIL (what the Python CPU is spent on; time in C
    with the GIL released, such as a send to PostgreSQL, is not sampled)."""
    procs = []
    for fmt, suffix in (("raw", "txt"), ("flamegraph", "svg")):
        argv = [_py_spy(), "record", *(["--idle"] if idle else ["--gil"]), "--nonblocking"]
        argv += ["-r", str(rate)]
        argv += ["-d", str(int(seconds)), "-f", fmt, "-o", f"{out}.{suffix}", "-p", str(pid)]
        if children:
            argv.append("--subprocesses")
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        rate = max(rate // 4, 10)  # the flame graph needs fewer samples
    return procs


def scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own port
            return str(resp.read().decode())
    except OSError:
        return ""


def metric_sum(text: str, name: str, label: str = "") -> float:
    """Sum of every sample of `name` whose labels contain `label`. A label's value may hold
    braces (a route template such as `/api/v1/transactions/{transaction_id}`)."""
    label_set = r'\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\}'
    pattern = re.compile(rf"^{re.escape(name)}({label_set})? ([0-9.eE+-]+)$", re.MULTILINE)
    return sum(float(v) for labels, v in pattern.findall(text) if label in (labels or ""))


COUNTERS = {
    "post_pending_messages": ("worker", "vaultcraft_worker_messages_total", 'actor="post_pending"'),
    "post_pending_seconds": (
        "worker",
        "vaultcraft_worker_message_duration_seconds_sum",
        'actor="post_pending"',
    ),
    "posting_batches": ("worker", "vaultcraft_posting_batch_size_count", ""),
    "posting_batch_seconds": ("worker", "vaultcraft_posting_batch_duration_seconds_sum", ""),
    "http_requests": ("gateway", "vaultcraft_http_request_duration_seconds_count", ""),
    "http_seconds": ("gateway", "vaultcraft_http_request_duration_seconds_sum", ""),
}


def counters(system: System) -> dict[str, float]:
    pages = {
        "worker": scrape(f"http://127.0.0.1:{system.metrics_port}/metrics"),
        "gateway": scrape(f"{system.base_url}/metrics"),
    }
    return {k: metric_sum(pages[page], n, label) for k, (page, n, label) in COUNTERS.items()}


def probe_health(base_url: str, stop: threading.Event, every_s: float = 0.05) -> list[float]:
    """Time `GET /health` (no database, no auth) until `stop`: the gateway's event-loop lag.

    A request that touches nothing waits only for the loop to get to it, so its latency
    under load is how long every other coroutine (a group-commit writer resuming after
    PostgreSQL answered, say) also waits for its turn.
    """
    samples: list[float] = []
    while not stop.is_set():
        started = time.monotonic()
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=10) as resp:  # noqa: S310
                resp.read()
            samples.append((time.monotonic() - started) * 1000)
        except OSError:
            pass
        stop.wait(every_s)
    return samples


def profile(system: System, data: DataSet, db_url: str, args: argparse.Namespace) -> dict[str, Any]:
    mode, hot = MODES[args.scenario]
    ids = data.wallet_ids[:hot] if hot else data.wallet_ids
    spec = LoadSpec(mode, system.base_url, data.token, ids, data.currency, args.scenario,
                    args.clients if mode == "closed" else 2, args.seconds,
                    rate=args.open_rate,
                    submit_wait_s=SUBMIT_WAIT_S if args.scenario == "latency" else 0)  # fmt: skip
    out: dict[str, Any] = {"scenario": args.scenario, "seconds": args.seconds,
                           "statements_note": stats.enable_statements(db_url)}  # fmt: skip
    roles = system.roles()
    time.sleep(stats.STATS_SETTLE_S)
    writes0 = stats.table_writes(db_url)
    before, cpu0, started = counters(system), stats.cpu_seconds(), time.monotonic()
    spies = [
        (role, spy)
        for role, proc in system.procs.items()
        for spy in record(
            proc.pid,
            args.out / role,
            args.seconds,
            args.rate,
            role in ("worker", "webhooks"),
            idle=not args.on_cpu,
        )
    ]
    stop, lags = threading.Event(), list[float]()
    prober = threading.Thread(target=lambda: lags.extend(probe_health(system.base_url, stop)))
    prober.start()
    load = run_load(spec)
    stop.set()
    prober.join()
    out["health_ms_under_load"] = summarize(lags)
    final_at = asyncio.run(wait_until_final(system.base_url, data.token, 300))
    cpu1, after = stats.cpu_seconds(), counters(system)
    out["wall_s"] = round(time.monotonic() - started, 2)
    out["drain_s"] = round(final_at - load.last_answer, 2)
    out["load"] = load.to_json()
    out["cpu_s"] = stats.cpu_by_group(cpu0, cpu1, roles)
    out["counters"] = {k: round(after[k] - before[k], 3) for k in COUNTERS}
    out["sizes"] = stats.group_sizes(db_url, data.organization_id, args.scenario)
    time.sleep(stats.STATS_SETTLE_S)
    out["rows_written"] = stats.rows_written(
        writes0, stats.table_writes(db_url), load.transfers_accepted
    )
    if out["statements_note"] is None:
        out["statements"] = stats.top_statements(db_url)
    for role, spy in spies:
        _, err = spy.communicate(timeout=args.seconds + 60)
        if spy.returncode:
            out.setdefault("py_spy_errors", {})[role] = err.decode(errors="replace")[-300:]
    out["py_spy"] = {
        role: stats.hot_frames(
            stats.read_raw_stacks(args.out / f"{role}.txt"),
            FOCUS.get(role, "Handle._run"),
            args.rate,
        )
        for role in system.procs
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--scenario", choices=sorted(MODES), default="uniform")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument(
        "--open-rate", type=float, default=300, help="transfers/s of the `latency` open loop"
    )
    parser.add_argument(
        "--on-cpu",
        action="store_true",
        help="sample only threads running on the CPU (default: waiting threads too)",
    )
    parser.add_argument("--out", type=Path, default=Path("profile-out"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with system_with_wallets("vaultcraft_profile", args.wallets) as (system, data, db_url):
        result = profile(system, data, db_url, args)
    (args.out / "report.json").write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
