"""The start of every worker process: the broker, then every actor bound to it.

`vaultcraft worker` runs `dramatiq workers.bootstrap`, so each worker process imports
this module first. It is the only module in `workers` that does anything when imported,
and it does these things, in this order: it configures the broker from the environment's
settings (`messaging.broker.setup_broker`, which also makes it Dramatiq's global broker,
the one the `dramatiq` command consumes from), declares every actor on that broker
(`workers.actors.declare_actors`), asks for what the process built until its worker
threads run to be left out of later garbage collections (`SettleHeapAfterBoot`), and for
its posting sessions to end when the worker is asked to stop (`EndSessionsOnShutdown`).
Dramatiq binds an actor to a broker when the actor is declared, so the broker has to exist first;
doing this here, explicitly, keeps every other worker module free of import-time effects:
they read their settings when a message runs (`workers.db.settings`), never when they are
imported.

A process that has already set up its broker (a test on its own Redis) and then imports
this module gets the actors declared on that broker.
"""

from __future__ import annotations

from messaging.broker import setup_broker
from workers.actors import declare_actors
from workers.posting_session import EndSessionsOnShutdown
from workers.startup_heap import SettleHeapAfterBoot

BROKER = setup_broker()
ACTORS = declare_actors(BROKER)
BROKER.add_middleware(SettleHeapAfterBoot())
BROKER.add_middleware(EndSessionsOnShutdown())
