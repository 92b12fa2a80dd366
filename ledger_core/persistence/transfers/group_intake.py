"""Group commit of transfer intents: many concurrent requests, one database transaction.

Each request hands its intent to the committer and awaits the outcome. A writer task takes
whatever has queued up while the previous commit was in flight and stores it all with one
statement and one commit, so the cost of a commit is shared by every request in the group.
A refusal (unknown wallet, reused key) answers only its own request; a database failure
answers every request of that group with the error, and nothing of it is stored.

A group takes one round trip once its wallets are known (`KnownWallets`; else two: the
wallets' read first): one statement that writes the intents, the dispatcher's wake-up and
whatever `companion` adds for them (the use case's audit records). Each round trip waits
for a turn of the gateway's event loop, which is busy under load, so what goes with the
intents rides in their statement, and the connection runs in autocommit: that statement
is its own transaction, all of it or nothing, so a `BEGIN` and a `COMMIT` would only add
two turns. The wallets' read needs no transaction of its own: what it found never changes,
and the rest is checked where it matters (the references' checks at the insert, the
wallets' state at posting).

One writer by default. A second one halves the groups, and each group costs its round
trips, its commit and its turns of the loop: at a fixed 1,000 transfers/s one writer spent
3 % less CPU a transfer across the system and answered the `202` in p50 / p99 24 / 64 ms
against 29-36 / 75-84 ms with two (BENCHMARKS.md). A group statement waits only for
another transaction inserting the same idempotency key or reference: nothing here locks
wallets or users `FOR UPDATE`, which would hold its foreign-key checks. The transfers this
gateway stores in transactions of their own (batches, multi-leg transfers, reversals) say
which keys and references they are storing (`storing_elsewhere`), and a request for one of
those waits for that transaction on its own, before it joins a group: one tenant's batch
in flight never holds up another tenant's transfers through the group they share. Another
gateway's transactions are unknown here, so a group's statement waits at most
`LOCK_WAIT_MS` for a row another transaction holds; past that nothing of the group is
stored and its requests are stored one by one, each in a task of its own, off the writer:
the one under the busy key waits for it alone, the others are answered at once.

At a moderate rate the writer finds only a request or two queued after each commit, and
pays a whole commit (its round trip, PostgreSQL's statement and commit, the dispatcher's
wake-up) for each. While requests keep coming (the previous group began less than
`STREAM_GAP_S` ago), a group of fewer than `SMALL_GROUP` waits for more until its oldest
request has waited `gather_ms` (`VAULTCRAFT_INTAKE_GATHER_MS`, 2 by default): at a fixed
1,000 transfers/s groups of about 2 became about 4.5, for 2 ms more on the `202`. A lone
request, a group already large, or one whose requests waited that long for the previous
commit is stored at once (0 turns the gathering off).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger_core.accounts import Principal
from ledger_core.acting import AuditContext
from ledger_core.errors import DomainError
from ledger_core.intents import Stored, TransferIntent
from ledger_core.persistence.transfers.conflicts import (
    LOCK_NOT_AVAILABLE,
    SERIALIZATION_OR_DEADLOCK,
    sqlstate,
)
from ledger_core.persistence.transfers.intake import (
    Companion,
    Item,
    KnownWallets,
    insert_items,
    route_each,
)

LOCK_WAIT_MS = 200
"""How long a group's statement waits for a row another transaction holds (`lock_timeout`
of the writer's connections). A group's statement takes a few milliseconds; a wait this
long is a transaction elsewhere storing the same key or reference."""

ALONE_AT_ONCE = 4
"""Requests stored one by one at the same time, each on a connection of the gateway's pool
(the one under the busy row holds its connection while it waits)."""

GATHER_MS = 2
"""How long the oldest request of a small group may wait for more while requests keep
coming (counted from when it was queued), unless the committer is given another."""

SMALL_GROUP = 8
"""A group this large or larger is stored at once."""

STREAM_GAP_S = 0.005
"""Requests keep coming when the previous group began less than this long ago."""

UniqueName = tuple[UUID, str, str]
"""What one stored transfer takes that is unique: (organization, "key" or "reference", value)."""

CompanionOf = Callable[[Sequence[tuple["Request", Item]]], Companion | None]
"""What to write with a group's accepted intents, in their statement (see `Companion`)."""

Announce = Callable[[Sequence[Item]], None]
"""Told of the intents a group is about to store, before their statement runs (the
gateway's long polls, which may then wait for a new transfer without reading it first)."""


@dataclass
class Request:
    actor: Principal
    intent: TransferIntent
    audit: AuditContext | None = None
    """Where the request came from, for `companion` (the committer only hands it on)."""
    future: asyncio.Future[Stored] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    queued_at: float = field(default_factory=time.monotonic)


class GroupCommitter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_group: int = 1000,
        writers: int = 1,
        companion: CompanionOf | None = None,
        announce: Announce | None = None,
        lock_wait_ms: int = LOCK_WAIT_MS,
        gather_ms: int = GATHER_MS,
    ) -> None:
        self._engine = create_async_engine(
            with_lock_timeout(engine.url, lock_wait_ms),
            pool_size=writers,
            max_overflow=writers,
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 5},
        )
        self._patient = engine.execution_options(isolation_level="AUTOCOMMIT")
        """For requests stored one by one: they may wait as long as the row takes."""
        self._max_group = max_group
        self._gather_s = gather_ms / 1000
        self._writers = writers
        self._companion = companion
        self._announce = announce
        self._wallets = KnownWallets()
        self._queue: asyncio.Queue[Request] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._alone: set[asyncio.Task[None]] = set()
        self._alone_slots = asyncio.Semaphore(ALONE_AT_ONCE)
        self._elsewhere: dict[UniqueName, tuple[int, asyncio.Event]] = {}

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"intake-{n}") for n in range(self._writers)
        ]

    async def stop(self) -> None:
        """Finish what is queued, then stop the writers."""
        await self._queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._engine.dispose()

    async def submit(
        self, actor: Principal, intent: TransferIntent, audit: AuditContext | None = None
    ) -> Stored:
        if self._elsewhere:
            await self._clear_of_elsewhere(unique_names(actor.organization_id, [intent]))
        request = Request(actor, intent, audit)
        await self._queue.put(request)
        return await request.future

    @contextlib.asynccontextmanager
    async def storing_elsewhere(self, names: set[UniqueName]) -> AsyncIterator[None]:
        """Around a transaction of the caller's own that stores transfers under these
        names (`unique_names`, `key_name`): until it ends, a request for one of them waits
        outside the groups.

        Inside a group it would wait on the uncommitted row, and the group's statement
        with it, holding up every request of the group, other tenants' included.
        """
        for name in names:
            count, released = self._elsewhere.get(name, (0, asyncio.Event()))
            self._elsewhere[name] = (count + 1, released)
        try:
            yield
        finally:
            for name in names:
                count, released = self._elsewhere[name]
                if count > 1:
                    self._elsewhere[name] = (count - 1, released)
                else:
                    del self._elsewhere[name]
                    released.set()

    async def _clear_of_elsewhere(self, names: set[UniqueName]) -> None:
        """Wait until no transaction of `storing_elsewhere` stores any of `names`."""
        while True:
            busy = next((self._elsewhere[n] for n in names if n in self._elsewhere), None)
            if busy is None:
                return
            await busy[1].wait()

    async def _run(self) -> None:
        began = float("-inf")
        while True:
            group = [await self._queue.get()]
            self._take_queued(group)
            now = time.monotonic()
            gather = group[0].queued_at + self._gather_s - now
            if gather > 0 and len(group) < SMALL_GROUP and now - began < STREAM_GAP_S:
                await asyncio.sleep(gather)
                self._take_queued(group)
            began = time.monotonic()
            handed_on = False
            try:
                await self._commit_with_retry(group, self._engine)
            except DBAPIError as exc:
                handed_on = sqlstate(exc) == LOCK_NOT_AVAILABLE
                if handed_on:
                    self._one_by_one(group)
                else:
                    _answer_all(group, exc)
            except Exception as exc:
                _answer_all(group, exc)
            finally:
                if not handed_on:  # else each request's own task marks it done
                    for _ in group:
                        self._queue.task_done()

    def _take_queued(self, group: list[Request]) -> None:
        while len(group) < self._max_group and not self._queue.empty():
            group.append(self._queue.get_nowait())

    def _one_by_one(self, group: list[Request]) -> None:
        """Store each request of a group that waited too long for another transaction's row
        in a task of its own, so that only the request under that row waits for it."""
        for request in group:
            task = asyncio.create_task(self._store_alone(request), name="intake-alone")
            self._alone.add(task)
            task.add_done_callback(self._alone.discard)

    async def _store_alone(self, request: Request) -> None:
        try:
            async with self._alone_slots:
                await self._commit_with_retry([request], self._patient)
        except Exception as exc:
            _answer(request, exc)
        finally:
            self._queue.task_done()

    async def _commit_with_retry(self, group: list[Request], engine: AsyncEngine) -> None:
        """Two groups racing on the same keys in different orders can deadlock; PostgreSQL
        aborts one of them, which is then simply tried again."""
        for attempt in range(3):
            try:
                await self._commit(group, engine)
                return
            except DBAPIError as exc:
                if sqlstate(exc) not in SERIALIZATION_OR_DEADLOCK or attempt == 2:
                    raise

    async def _commit(self, group: list[Request], engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            routes = await route_each(conn, [(r.actor, r.intent) for r in group], self._wallets)
            items: list[Item] = []
            accepted: list[Request] = []
            for request, route in zip(group, routes, strict=True):
                if isinstance(route, DomainError):
                    _answer(request, route)
                else:
                    items.append(Item(request.actor, request.intent, route))
                    accepted.append(request)
            if not items:
                return
            companion = (
                self._companion(list(zip(accepted, items, strict=True)))
                if self._companion is not None
                else None
            )
            if self._announce is not None:
                self._announce(items)
            results = await insert_items(conn, items, companion)
        for request, result in zip(accepted, results, strict=True):
            _answer(request, result)


def key_name(organization_id: UUID, key: str) -> UniqueName:
    """What a transfer stored under idempotency key `key` takes in its organization."""
    return (organization_id, "key", key)


def unique_names(organization_id: UUID, intents: Sequence[TransferIntent]) -> set[UniqueName]:
    """The idempotency keys and references `intents` take in their organization."""
    names = {key_name(organization_id, intent.idempotency_key) for intent in intents}
    return names | {
        (organization_id, "reference", intent.reference)
        for intent in intents
        if intent.reference is not None
    }


def with_lock_timeout(url: URL, lock_wait_ms: int) -> URL:
    """`url` with `lock_timeout` added to the server settings it gives (`options`)."""
    given = url.query.get("options")
    options = " ".join(given) if isinstance(given, tuple) else given
    lock = f"-c lock_timeout={lock_wait_ms}"
    return url.update_query_dict({"options": f"{options} {lock}" if options else lock})


def _answer_all(group: Sequence[Request], exc: BaseException) -> None:
    for request in group:
        _answer(request, exc)


def _answer(request: Request, outcome: Stored | BaseException) -> None:
    """Resolve a request once; one whose client went away is simply skipped."""
    if request.future.done():
        return
    if isinstance(outcome, Stored):
        request.future.set_result(outcome)
    else:
        request.future.set_exception(outcome)
