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

A work may come with an ``ahead``: what can be worked out before the write
lock is taken (the reads, the change itself, its answer), run for the whole
group first in one reading transaction on the writer's connection, so that
the write lock, which every worker on the database waits for, is held only
for the writes. An ``ahead`` that fails answers its request at once.
"""

from __future__ import annotations

import functools
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
Ahead = Callable[[Direct], Any]
"""Reads to run before the work's transaction; the work is then given their result"""
Done = Callable[[bool, Any], None]
"""Told ``(True, result)`` once the transaction holding the work committed, else ``(False, exception)``"""

MOST = 64
"""works in one transaction at most"""


class GroupWriter:
    """The writer thread of one :class:`~engine.store.Store` (see the module's description)."""

    def __init__(self, store: Store, *, most: int = MOST, name: str = "tinhgon-writes") -> None:
        self.store = store
        self.most = most
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Callable[..., Any], done: Done, ahead: Ahead | None = None) -> None:
        """Queue ``work``; ``done`` is called from the writer thread with its outcome.

        With ``ahead``, ``ahead(reading)`` runs first (see the module's
        description) and ``work(db, its result)`` then; else ``work(db)``.
        Neither may open a transaction of its own: the writer's already
        holds the database's one write lock.

        Raises:
            RuntimeError: the writer is closed.
        """
        if self._closed:
            raise RuntimeError("the writer is closed")
        self._queue.put((work, done, ahead))

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

    def _commit(self, items: list[_Item]) -> None:
        group = self._worked_out(items)
        if not group:
            return
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
        for (_, done), outcome in zip(group, outcomes, strict=True):
            _deliver(done, outcome)

    def _worked_out(self, items: list[_Item]) -> list[tuple[Work, Done]]:
        """The group's works, their ``ahead`` run first in one reading
        transaction; those whose ``ahead`` failed are answered now."""
        if all(ahead is None for _, _, ahead in items):
            return [(work, done) for work, done, _ in items]
        results: list[tuple[bool, Any] | None] = []
        try:
            with self.store.direct(write=False) as db:
                results.extend(None if ahead is None else _attempt(ahead, db) for _, _, ahead in items)
        except BaseException as exc:  # the reading transaction itself failed
            results = [None if ahead is None else (False, exc) for _, _, ahead in items]
        group: list[tuple[Work, Done]] = []
        for (work, done, _), result in zip(items, results, strict=True):
            if result is None:
                group.append((work, done))
            elif result[0]:
                group.append((functools.partial(_given, work, result[1]), done))
            else:
                _deliver(done, result)
        return group


_Item = tuple[Callable[..., Any], Done, Ahead | None]


def _given(work: Callable[[Direct, Any], Any], worked_out: Any, db: Direct) -> Any:
    return work(db, worked_out)


def _attempt(ahead: Ahead, db: Direct) -> tuple[bool, Any]:
    try:
        return True, ahead(db)
    except Exception as exc:
        return False, exc


def _deliver(done: Done, outcome: tuple[bool, Any]) -> None:
    try:
        done(*outcome)
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
