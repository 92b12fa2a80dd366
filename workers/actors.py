"""Every Dramatiq actor, imported so `dramatiq workers.actors` registers them all."""

from __future__ import annotations

from messaging.broker import setup_broker

setup_broker()

from workers.posting import post_pending  # noqa: E402
from workers.reconciliation import run_reconciliation  # noqa: E402
from workers.settlement import run_settlement  # noqa: E402
from workers.webhooks import deliver_webhook  # noqa: E402

__all__ = ["deliver_webhook", "post_pending", "run_reconciliation", "run_settlement"]
