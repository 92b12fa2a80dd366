"""Structured logging inside each Dramatiq worker process.

`vaultcraft worker` names this module on the Dramatiq command line, and Dramatiq imports it
in every worker process after the broker module: importing it is what configures logging
there (it replaces the plain-text handler Dramatiq installs).
"""

from __future__ import annotations

from runtime.logs import configure_logging
from runtime.settings import Settings

configure_logging("worker", Settings.from_env())
