"""What a running service holds: built once at start-up (the app's
lifespan) and shared by every request of a worker."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from engine.calendar import WorkingCalendar, load_calendar
from engine.cases import CaseService
from engine.compiled import Compiled
from engine.db import ProcedureRow
from engine.direct import Direct
from engine.keys import Keyring, Signer, keyring
from engine.schema import head, upgrade
from engine.sealer import Sealer
from engine.store import AsyncStatements, Store
from engine.writer import GroupWriter
from procedures.catalog import priced
from procedures.catalog_file import CatalogFile, catalog_path, read_catalog_file
from procedures.messages import language
from procedures.model import Definition

from . import metrics, reform_work
from .offload import Offload
from .reform_work import Compared, Header, Measured, Simplified
from .settings import Settings

T = TypeVar("T")
A = TypeVar("A")

KEPT_STEPS = 400_000
"""a worker keeps versions' metrics and findings up to this many steps in all (the least recently used go first):
a catalog of thousands of ordinary versions, or a few of 20,000 steps"""
KEPT_DIAGRAMS = 64
"""how many diagrams and comparisons (together), simplifications, and detail answers a worker keeps, of each"""


class Kept:
    """The most recently used results of a pure computation, up to a total
    ``weight`` (each result's by ``weigh``), each computed once even when
    several requests ask for it at the same time."""

    def __init__(self, weight: int, weigh: Callable[[Any], int] = lambda value: 1) -> None:
        self.weight, self.weigh = weight, weigh
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key][0]  # type: ignore[no-any-return]
            one = self._computing.setdefault(key, threading.Lock())
        with one:  # the first asker computes; the others wait for it
            with self._lock:
                if key in self._values:
                    return self._values[key][0]  # type: ignore[no-any-return]
            value = compute()
            weight = self.weigh(value)
            with self._lock:
                self._values[key] = (value, weight)
                self._held += weight
                self._computing.pop(key, None)
                while self._held > self.weight and len(self._values) > 1:
                    _, (_, gone) = self._values.popitem(last=False)
                    self._held -= gone
            return value


@dataclass
class Services:
    settings: Settings
    store: Store
    signer: Signer
    calendar: WorkingCalendar
    cases: CaseService
    compiled: Compiled
    catalog: CatalogFile | None = None
    """the ``catalog.yaml`` of the definitions folder served: its price list
    costs every procedure on the pages, its programmes measure the catalog"""
    keys: Keyring | None = None
    """the public keys verification trusts: the key file's and its history's
    (:func:`engine.keys.keyring`); the signer's alone when not given"""
    sealer: Sealer | None = None
    """the audit sealer thread of this worker (:mod:`engine.sealer`), stopped by :meth:`close`"""
    _priced: dict[int, Definition] = field(init=False, default_factory=dict)
    _measures: Kept = field(init=False, default_factory=lambda: Kept(KEPT_STEPS, lambda m: m.header.steps + 1))
    _diagrams: Kept = field(init=False, default_factory=lambda: Kept(KEPT_DIAGRAMS))
    _simplified: Kept = field(init=False, default_factory=lambda: Kept(KEPT_DIAGRAMS))
    _details: Kept = field(init=False, default_factory=lambda: Kept(KEPT_DIAGRAMS))
    offload: Offload = field(init=False)
    """where big definitions are read, measured, simplified and drawn (:mod:`api.offload`)"""
    schema_head: str = field(init=False, default_factory=head)
    """the schema revision this tinhgon's migrations end at, read once (``/readyz`` compares the database's with it)"""
    _writes: GroupWriter | None = field(init=False, default=None)
    _side_by_side: ThreadPoolExecutor | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        settings = self.settings
        self.offload = Offload(seconds=settings.heavy_seconds, at_once=settings.heavy_at_once, threshold=settings.offload_bytes)
        if self.keys is None:
            self.keys = Keyring([self.signer.verifier()])
        if self.store.one_writer:
            self._writes = GroupWriter(self.store)
        else:
            self._side_by_side = ThreadPoolExecutor(self.settings.write_threads, thread_name_prefix="tinhgon-actions")

    def definition(self, row: ProcedureRow) -> Definition:
        """A stored version as the pages cost it: under the served catalog's
        price list, made once per version (an amendment restarts the service)."""
        defn = self.compiled.get(row).definition
        if self.catalog is None:
            return defn
        found = self._priced.get(row.id)
        if found is None:
            found = self._priced[row.id] = priced(defn, self.catalog.prices)
        return found

    # -- the reform side's heavy work, kept per version (amendments restart the service)
    # and per language, since findings and fixes are texts people read --
    @property
    def _prices(self) -> Any:
        return self.catalog.prices if self.catalog is not None else None

    def measured(self, row: ProcedureRow) -> Measured:
        """A version's metrics and findings under the served price list, as data: computed once."""

        def compute() -> Measured:
            with metrics.timed("analysis"):
                return self.offload.run(len(row.body), reform_work.measured, row.body, _source(row), self._prices)

        return self._measures.get((row.id, language()), compute)

    def drawn(self, row: ProcedureRow, *, inline: bool = True) -> str:
        """A version's diagram, for a page (``inline``) or as a file: drawn once."""
        return self._diagrams.get(
            (row.id, inline, language()),
            lambda: self.offload.run(len(row.body), reform_work.drawn, row.body, _source(row), self._prices, inline),
        )

    def detail_json(self, row: ProcedureRow) -> str:
        """A version as ``GET /api/procedures/CODE/VERSION`` answers it (JSON text): made once per status."""
        return self._details.get(
            (row.id, row.status, language()),
            lambda: self.offload.run(len(row.body), reform_work.detail_json, row.body, _source(row), self._prices, row.status),
        )

    def compared(self, before: ProcedureRow, after: ProcedureRow, *, inline: bool = True) -> Compared:
        """Two versions compared, with their picture: worked out once."""
        return self._diagrams.get(
            (before.id, after.id, inline, language()),
            lambda: self.offload.run(
                len(before.body) + len(after.body),
                reform_work.compared,
                before.body,
                _source(before),
                after.body,
                _source(after),
                self._prices,
                inline,
            ),
        )

    def simplified(self, row: ProcedureRow) -> Simplified:
        """A version simplified (the caller stores the new one): worked out once."""

        def compute() -> Simplified:
            with metrics.timed("simplify"):
                return self.offload.run(len(row.body), reform_work.simplified, row.body, _source(row))

        return self._simplified.get((row.id, language()), compute)

    def checked_upload(self, raw: bytes, source: str) -> Header:
        """An upload read and checked against the format and the service's limits."""
        return self.offload.run(len(raw), reform_work.checked_upload, raw, source, self.settings.max_steps)

    @classmethod
    def start(cls, settings: Settings) -> Services:
        """Open the database (migrating it), the signing key, the calendar and
        the served folder's catalog file.

        Raises:
            DefinitionError: the catalog file is broken (``serve`` checks it first).
        """
        store = Store(settings.database_url)
        upgrade(store.engine)
        signer = Signer.load_or_create(settings.key_file)
        store.signer = signer
        calendar = load_calendar(settings.calendar_file) if settings.calendar_file else WorkingCalendar()
        compiled = Compiled()
        cases = CaseService(
            store, signer=signer, calendar=calendar, compiled=compiled, idempotency_lease=settings.idempotency_lease_seconds
        )
        folder = settings.definitions
        catalog = read_catalog_file(catalog_path(folder)) if folder and catalog_path(folder).is_file() else None
        sealer = Sealer(
            store,
            signer,
            seal_seconds=settings.seal_seconds,
            folder=settings.checkpoint_dir,
            checkpoint_minutes=settings.checkpoint_minutes,
            lag=metrics.set_sealer_lag,
        )
        services = cls(settings, store, signer, calendar, cases, compiled, catalog, keyring(settings.key_file), sealer)
        sealer.start()
        return services

    @overload
    async def writing(self, work: Callable[[Direct], T]) -> T: ...
    @overload
    async def writing(self, work: Callable[[Direct, A], T], ahead: Callable[[Direct], A]) -> T: ...

    async def writing(self, work: Callable[..., T], ahead: Callable[[Direct], Any] | None = None) -> T:
        """Run a request's work that writes (a case action) in a write
        transaction, off the event loop; ``work`` gets the transaction.
        With ``ahead``, ``work`` also gets what ``ahead`` read and worked
        out: on SQLite in a reading transaction before the write lock is
        taken (see :mod:`engine.writer`), on PostgreSQL in the same one.

        SQLite takes one writer at a time, so on SQLite one thread of the
        worker does all such work (:class:`~engine.writer.GroupWriter`), and
        the requests that queued meanwhile share a transaction, each in a
        savepoint. Sixteen request threads queueing at the writer gate had
        spent more on handing the GIL and the gate to one another (40 futex
        calls an action) than on the actions, and each wrote through a
        connection of its own whose page cache the others' commits had made
        stale.

        On PostgreSQL transactions run side by side, each in one of a few
        threads (:attr:`Settings.write_threads`, 4): with as many as there
        were requests (16 in the benchmark, up to 40), the threads spent
        their time taking the GIL from one another between round trips,
        and actions went at 70 % of the rate four threads reach.
        """
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        if self._writes is None:
            return await loop.run_in_executor(self._side_by_side, context.run, self._in_transaction, work, ahead)
        future: asyncio.Future[T] = loop.create_future()

        def done(ok: bool, value: Any) -> None:
            metrics.writer_left()
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, ok, value)

        metrics.writer_joined()
        try:
            self._writes.submit(
                lambda db, *worked_out: context.run(work, db, *worked_out),
                done,
                None if ahead is None else lambda db: context.run(ahead, db),
            )
        except BaseException:  # the writer is closed: the action never queued
            metrics.writer_left()
            raise
        return await future

    @property
    def transaction_threads(self) -> ThreadPoolExecutor | None:
        """PostgreSQL: the :attr:`Settings.write_threads` threads that run
        case actions' transactions (None on SQLite, whose one writer runs them)."""
        return self._side_by_side

    async def open_statements(self) -> AsyncStatements | None:
        """PostgreSQL: the pool of asyncio connections on which the running
        event loop makes plain case actions (see
        :meth:`~engine.cases.CaseService.change_signed_in_async`), up to
        :attr:`Settings.write_threads` at once; None on SQLite. The caller
        closes it on the same loop."""
        if self.store.one_writer:
            return None
        statements = AsyncStatements(self.store, self.settings.write_threads)
        await statements.open()
        return statements

    def _in_transaction(self, work: Callable[..., T], ahead: Callable[[Direct], Any] | None) -> T:
        with self.store.direct() as db:
            return work(db) if ahead is None else work(db, ahead(db))

    def close(self) -> None:
        if self.sealer is not None:
            self.sealer.stop()
        if self._writes is not None:
            self._writes.close()
        if self._side_by_side is not None:
            self._side_by_side.shutdown()
        self.store.dispose()


def _source(row: ProcedureRow) -> str:
    return f"{row.code}.v{row.version}"


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():  # the client went away; the work is done all the same
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
