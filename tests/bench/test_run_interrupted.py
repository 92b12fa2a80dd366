"""A benchmark run that is killed still cleans up: `kill` (SIGTERM) goes through the
`finally` blocks that stop the system and drop the databases, and the load generator's
process ends with the run instead of driving a system that is gone."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]

INTERRUPTED_RUN = textwrap.dedent("""
    import multiprocessing, sys
    from bench.loadgen import LoadSpec, run_load
    from bench.system import exit_on_sigterm
    from runtime.ports import free_port

    def told(_elapsed):
        print("load", *(p.pid for p in multiprocessing.active_children()), flush=True)

    if __name__ == "__main__":
        exit_on_sigterm()
        spec = LoadSpec("closed", f"http://127.0.0.1:{free_port()}", "token", ["a", "b"],
                        "USD", "killed", concurrency=1, duration_s=60)
        try:
            run_load(spec, told)
        finally:
            print("cleaned up", flush=True)
""")


def test_a_killed_run_cleans_up_and_ends_its_load_generator() -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_RUN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        line = run.stdout.readline().split()
        assert line and line[0] == "load", line
        load_generator = psutil.Process(int(line[1]))

        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=30)

        assert run.returncode == 128 + signal.SIGTERM
        assert "cleaned up" in out
        assert not load_generator.is_running() or load_generator.status() == psutil.STATUS_ZOMBIE
    finally:
        if run.poll() is None:  # the run did not end: leave nothing of it behind
            for process in psutil.Process(run.pid).children(recursive=True):
                process.kill()
            run.kill()
