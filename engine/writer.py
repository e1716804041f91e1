"""One writer for a database that takes one writer at a time (SQLite).

The service's case actions do not each open a write transaction of their
own: they are queued for one thread, which runs them one after another. The
ones that queued while a transaction ran are run together in the next one,
each in a savepoint of its own (group commit): a refused action rolls back
to its savepoint, and the others still commit. Nobody is told an action
succeeded before the transaction that holds it has committed; when that
commit fails, every action of the group gets the error.

On SQLite a commit and the writer gate cost more than the action's own
statements, and the pages that consecutive actions touch (the idempotency
keys, the newest events, the inbox index) are written to the log once per
commit rather than once per action.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from .direct import Direct, TransactionBroken
from .store import Store

log = logging.getLogger("tinhgon.engine")

Work = Callable[[Direct], Any]
"""Statements to run in the writer's transaction (``Direct``); what it returns is its result"""
Done = Callable[[bool, Any], None]
"""Told ``(True, result)`` once the transaction holding the work committed, else ``(False, exception)``"""

MOST = 64
"""works in one transaction at most"""


class GroupWriter:
    """The writer thread of one :class:`~engine.store.Store` (see the module's description)."""

    def __init__(self, store: Store, *, most: int = MOST, name: str = "tinhgon-writes") -> None:
        self.store = store
        self.most = most
        self._queue: queue.SimpleQueue[tuple[Work, Done] | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Work, done: Done) -> None:
        """Queue ``work``; ``done`` is called from the writer thread with its outcome.

        ``work`` must not open a write transaction of its own: the writer's
        already holds the database's one write lock.

        Raises:
            RuntimeError: the writer is closed.
        """
        if self._closed:
            raise RuntimeError("the writer is closed")
        self._queue.put((work, done))

    def close(self) -> None:
        """Run what is queued, then stop the thread."""
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self.most:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[Work, Done]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self.store.direct() as db:
                if len(group) == 1:  # alone, its transaction is its savepoint
                    outcomes.append((True, group[0][0](db)))
                else:
                    outcomes.extend(_part(db, work) for work, _ in group)
        except BaseException as exc:
            # Nothing of the transaction holds (it failed to commit, or a
            # savepoint could not be rolled back): each work not refused on
            # its own gets this error.
            outcomes = [(False, exc) if ok else (ok, value) for ok, value in outcomes]
            outcomes += [(False, exc)] * (len(group) - len(outcomes))
        for (_, done), (ok, value) in zip(group, outcomes, strict=True):
            try:
                done(ok, value)
            except Exception:  # a caller's callback must not stop the writer
                log.exception("the outcome of a write could not be delivered")


def _part(db: Direct, work: Work) -> tuple[bool, Any]:
    """One work of a group, in a savepoint: refused, it leaves nothing behind."""
    try:
        with db.savepoint():
            return True, work(db)
    except TransactionBroken:
        raise
    except Exception as exc:
        return False, exc
