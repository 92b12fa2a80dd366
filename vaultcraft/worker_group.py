"""The main process of `vaultcraft worker`: Dramatiq's own command line, logging JSON lines.

Left to itself, Dramatiq's main process and its forks (the metrics server) log in
Dramatiq's text format. `vaultcraft worker` runs this module with `--skip-logging`
instead, after configuring the same structured logging every other process uses: forks
inherit it, and each worker process applies it again when it imports
`vaultcraft.worker_logging`. Every line of the worker group is then one JSON object.
"""

from __future__ import annotations

import sys

from dramatiq.cli import main

from runtime.logs import configure_logging
from runtime.settings import Settings

if __name__ == "__main__":
    configure_logging("worker", Settings.from_env())
    sys.exit(main())  # type: ignore[no-untyped-call]
