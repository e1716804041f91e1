"""What a running service holds: built once at start-up (the app's
lifespan) and shared by every request of a worker."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from engine.audit import Signer
from engine.calendar import WorkingCalendar, load_calendar
from engine.cases import CaseService, Compiled
from engine.schema import upgrade
from engine.store import Store

from .settings import Settings

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    store: Store
    signer: Signer
    calendar: WorkingCalendar
    cases: CaseService
    compiled: Compiled
    _writes: ThreadPoolExecutor | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.store.dialect == "sqlite":
            self._writes = ThreadPoolExecutor(1, thread_name_prefix="tinhgon-writes")

    @classmethod
    def start(cls, settings: Settings) -> Services:
        """Open the database (migrating it), the signing key and the calendar."""
        store = Store(settings.database_url)
        upgrade(store.engine)
        signer = Signer.load_or_create(settings.key_file)
        calendar = load_calendar(settings.calendar_file) if settings.calendar_file else WorkingCalendar()
        compiled = Compiled()
        cases = CaseService(
            store, signer=signer, calendar=calendar, compiled=compiled, idempotency_lease=settings.idempotency_lease_seconds
        )
        return cls(settings, store, signer, calendar, cases, compiled)

    async def writing(self, work: Callable[[], T]) -> T:
        """Run a request's work that writes (a case action) off the event loop.

        SQLite takes one writer at a time, so on SQLite one thread of the
        worker does all such work, one request after another. Sixteen
        request threads queueing at the writer gate had spent more on
        handing the GIL and the gate to one another (40 futex calls an
        action) than on the actions, and each wrote through a connection of
        its own whose page cache the others' commits had made stale. On
        PostgreSQL, where transactions run side by side, the request goes to
        the thread pool as any other.
        """
        if self._writes is None:
            return await run_in_threadpool(work)
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._writes, context.run, work)

    def close(self) -> None:
        if self._writes is not None:
            self._writes.shutdown()
        self.store.dispose()
